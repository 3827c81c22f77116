package fakehcloud_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

// Stopping the fake (fake-hcloud on SIGTERM) removes its volumes' images
// and says so on its exit line.
func TestServeRemovesVolumeImagesOnStop(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 (e2fsprogs) is needed to format a volume")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out testenv.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- fakehcloud.Serve(ctx, addr, "t0ken", nil, &out) }()
	c := hcloud.NewClient(hcloud.WithToken("t0ken"), hcloud.WithEndpoint("http://"+addr+"/v1"))
	var vol hcloud.VolumeCreateResult
	for i := 0; i < 50; i++ {
		if vol, _, err = c.Volume.Create(context.Background(), hcloud.VolumeCreateOpts{Name: "v1", Size: 10, Format: hcloud.Ptr("ext4"), Location: &hcloud.Location{Name: "fsn1"}}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(os.TempDir(), fmt.Sprintf("fakehcloud-volumes-%d", os.Getpid()), fmt.Sprintf("volume-%d.img", vol.Volume.ID))
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("no volume image: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Errorf("the volume image is left: %v", err)
	}
	if !strings.Contains(out.String(), "1 volumes' images") {
		t.Errorf("exit line: %s", out.String())
	}
}
