package testenv

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lian-build/action/internal/testenv/vmhost"
)

// VMHosts are runner hosts that are real VMs (internal/testenv/vmhost),
// their consoles in the test log; the guest image is built on first use
// (~1–5 minutes, then cached in vmhost.CacheDir). At the end of the test no
// VM, namespace or qemu process of this process may be left.
func VMHosts(t testing.TB, forward ...int) *vmhost.Hosts {
	t.Helper()
	Require(t)
	var missing []string
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		missingPrereq(t, strings.Join(missing, ", ")+" (apt-get install qemu-system-x86 qemu-utils debootstrap)")
	}
	log := &testLog{t: t}
	img, err := vmhost.BuildImage(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	h := &vmhost.Hosts{Image: img, Dir: t.TempDir(), Forward: forward, Log: log}
	t.Cleanup(func() {
		for _, id := range h.IDs() {
			_ = h.Stop(context.Background(), id)
		}
		log.close()
		if left := vmhost.Leftovers(); len(left) > 0 {
			t.Errorf("left after the test: %s", strings.Join(left, ", "))
		}
	})
	t.Logf("VM runner hosts: accel %s", vmhost.Accel(context.Background(), img))
	return h
}

// testLog writes lines into the test's log until the test ends.
type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) close() {
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
}

// Downloads serves what a stock-image server downloads at boot — this
// machine's buildkitd and buildctl as BuildKit's release tarball lays them
// out (bin/…), and its runc — on a port of this machine's loopback that VM
// runner hosts reach at vmhost.ServicesIP (Forward it). The pins are the
// files' sha256, for amd64 (the VMs' architecture).
type Downloads struct {
	Port                   int
	BuildkitURL, RuncURL   string
	BuildkitPins, RuncPins map[string]string
}

// RunnerDownloads starts the download server for the test.
func RunnerDownloads(t testing.TB) Downloads {
	t.Helper()
	bk := Require(t)
	dir := t.TempDir()
	tgz := filepath.Join(dir, "buildkit-amd64.tar.gz")
	if err := writeTarGz(tgz, "bin/", []string{bk, filepath.Join(filepath.Dir(bk), "buildctl")}); err != nil {
		t.Fatal(err)
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFile(runc, filepath.Join(dir, "runc-amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	port := ln.Addr().(*net.TCPAddr).Port
	base := fmt.Sprintf("http://%s:%d/", vmhost.ServicesIP, port)
	return Downloads{Port: port, BuildkitURL: base + "buildkit-{arch}.tar.gz", RuncURL: base + "runc-{arch}",
		BuildkitPins: map[string]string{"amd64": fileSHA256(t, tgz)}, RuncPins: map[string]string{"amd64": fileSHA256(t, filepath.Join(dir, "runc-amd64"))}}
}

func fileSHA256(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// writeTarGz writes files into a gzipped tarball under prefix.
func writeTarGz(path, prefix string, files []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: prefix + filepath.Base(name), Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return f.Close()
}
