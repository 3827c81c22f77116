package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/lian-build/action/internal/compute/docker"
)

// Dockerd is a Docker Engine a test started: its own data and exec roots,
// its own socket, no bridge and no iptables rules (nothing of it reaches
// the host's network).
type Dockerd struct {
	Host string // unix://…/docker.sock
	dir  string
	cmd  *exec.Cmd
	Log  *SyncBuffer
}

// StartDockerd starts dockerd (Debian's docker.io) for the test and stops
// it, removing its state, at the end. It fails under LIAN_E2E=1 when
// dockerd is missing.
func StartDockerd(t testing.TB) *Dockerd {
	t.Helper()
	Require(t)
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		missingPrereq(t, "dockerd (apt-get install docker.io)")
	}
	// A short path: the socket's must fit a sockaddr_un.
	dir, err := os.MkdirTemp("", "lbdk-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Dockerd{Host: "unix://" + filepath.Join(dir, "docker.sock"), dir: dir, Log: &SyncBuffer{}}
	d.cmd = exec.Command(bin, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--host", d.Host, "--pidfile", filepath.Join(dir, "docker.pid"), "--bridge=none", "--iptables=false", "--ip6tables=false",
		"--ip-masq=false", "--userland-proxy=false", "--storage-driver=overlay2", "--exec-opt", "native.cgroupdriver=cgroupfs")
	d.cmd.Stdout, d.cmd.Stderr = d.Log, d.Log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(t) })
	c := d.Client(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.Ping(ctx, client.PingOptions{})
		cancel()
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd never answered: %v\n%s", err, d.Log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Client is an Engine API client of this dockerd.
func (d *Dockerd) Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(client.WithHost(d.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (d *Dockerd) stop(t testing.TB) {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// What the engine mounted under its roots (overlays, the exec root's netns files).
	out, _ := exec.Command("sh", "-c", fmt.Sprintf("awk '$5 ~ \"^%s\" {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l", d.dir)).CombinedOutput()
	if err := os.RemoveAll(d.dir); err != nil {
		t.Errorf("removing dockerd's state: %v %s", err, strings.TrimSpace(string(out)))
	}
}

// RunnerImage makes the docker provider's runner image from this machine's
// buildkitd, buildctl, runc and busybox and imports it into d; it returns
// the image's name.
func (d *Dockerd) RunnerImage(t testing.TB) string {
	t.Helper()
	const ref = "lian-build/buildkit:test"
	bk, err := Buildkitd()
	if err != nil {
		t.Fatal(err)
	}
	files := docker.ImageFiles{Buildkitd: bk, Buildctl: filepath.Join(filepath.Dir(bk), "buildctl")}
	if files.Runc, err = exec.LookPath("runc"); err != nil {
		t.Fatal(err)
	}
	if files.Busybox, err = exec.LookPath("busybox"); err != nil {
		t.Fatal(err)
	}
	if err := docker.ImportImage(context.Background(), d.Client(t), ref, files); err != nil {
		t.Fatal(err)
	}
	return ref
}
