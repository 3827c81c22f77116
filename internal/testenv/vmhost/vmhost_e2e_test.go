package vmhost_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

// A server's VM boots the real cloud-init, which finds Hetzner's datasource
// by the VM's DMI, takes an ephemeral DHCP lease, reads the metadata and
// user-data from 169.254.169.254, installs the server's key and runs the
// user-data; the guest runs cgroup v2 under systemd.
func TestVMBootsThroughHetznerMetadata(t *testing.T) {
	h := testenv.VMHosts(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	spec := fakehcloud.HostSpec{ServerID: 4242, Name: "lb-vm-test", ServerType: "cpx21", Cores: 2, MemoryGB: 1,
		UserData: "#cloud-config\nruncmd:\n  - echo from-user-data > /run/user-data-ran\n",
		SSHKeys:  []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))}}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	start := time.Now()
	ip, err := h.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	var conn *sshx.Conn
	for conn == nil {
		conn, err = sshx.Dial(ctx, sshx.Config{Addr: ip + ":22", Signer: signer, TrustFirst: true, Timeout: 5 * time.Second})
		if ctx.Err() != nil {
			t.Fatalf("sshd never answered with the metadata's key: %v", err)
		}
		if err != nil {
			time.Sleep(time.Second)
		}
	}
	defer conn.Close()
	t.Logf("SSH after %v", time.Since(start).Round(time.Millisecond))
	out, err := conn.Run(ctx, "cloud-init status --wait >/dev/null; cat /run/user-data-ran; stat -fc %T /sys/fs/cgroup; cat /sys/class/dmi/id/sys_vendor; hostname; cloud-init query platform")
	t.Logf("after %v:\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"from-user-data", "cgroup2fs", "Hetzner", "lb-vm-test", "hetzner"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the guest says no %q", want)
		}
	}
	seen := strings.Join(h.Metadata(spec.ServerID), ", ")
	for _, want := range []string{"GET /hetzner/v1/metadata", "GET /hetzner/v1/userdata"} {
		if !strings.Contains(seen, want) {
			t.Errorf("cloud-init did not ask for %s (asked: %s)", want, seen)
		}
	}
	if got, err := h.Run(ctx, spec.ServerID, "cat /run/user-data-ran"); err != nil || strings.TrimSpace(string(got)) != "from-user-data" {
		t.Errorf("guest agent: %q, %v", got, err)
	}
	if err := h.Stop(ctx, spec.ServerID); err != nil {
		t.Fatal(err)
	}
}
