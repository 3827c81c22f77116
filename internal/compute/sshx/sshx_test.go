package sshx_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
)

// runnerOverSSH is a local runner and an SSH connection through a real sshd
// to this machine: its socket is reachable both ways. Both end with the test.
func runnerOverSSH(tb testing.TB, lease string) (compute.Runner, string, *sshx.Conn) {
	tb.Helper()
	return runnerOverSSHOf(tb, lease, testenv.NewProvider(tb, nil))
}

func runnerOverSSHOf(tb testing.TB, lease string, p *local.Provider) (compute.Runner, string, *sshx.Conn) {
	tb.Helper()
	testenv.Require(tb)
	sshd := testenv.StartSSHD(tb)
	r, err := p.Spawn(context.Background(), sizing.HCloud[0], compute.Lease{ID: lease, TTL: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Destroy(context.Background()) })
	conn, err := sshx.Dial(context.Background(), sshx.Config{Addr: sshd.Addr, Signer: sshd.Client, HostKey: sshd.HostKey})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return r, strings.TrimPrefix(r.Info().Address, "unix://"), conn
}

// A real build through a real sshd: the BuildKit client reaches a runner's
// unix socket over the SSH connection only.
func TestBuildOverSSH(t *testing.T) {
	_, socket, conn := runnerOverSSH(t, "sshx-build")
	c, err := conn.BuildKit(context.Background(), socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM base\nRUN echo over ssh > /x\nCOPY Dockerfile /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base, _ := buildkit.ParseNamedContext("base=oci-layout://" + testenv.BaseLayout(t))
	var progress strings.Builder
	rep, err := buildkit.Build(context.Background(), c, buildkit.Options{ContextDir: dir, NamedContexts: []buildkit.NamedContext{base}, Progress: "plain", ProgressOut: &progress})
	if err != nil {
		t.Fatalf("build over ssh: %v\n%s", err, progress.String())
	}
	if rep.Steps.Total < 2 {
		t.Fatalf("report %+v", rep)
	}
	out, err := conn.Run(context.Background(), "test -S "+socket+" && echo socket-here")
	if err != nil || strings.TrimSpace(string(out)) != "socket-here" {
		t.Fatalf("Run: %q %v", out, err)
	}
}

// The host key is pinned: another key is refused before authentication, and
// a key the server does not know is refused by the server.
func TestHostKeyPinnedAndClientKeyChecked(t *testing.T) {
	sshd := testenv.StartSSHD(t)
	other, _ := testenv.NewKey(t)
	_, err := sshx.Dial(context.Background(), sshx.Config{Addr: sshd.Addr, Signer: sshd.Client, HostKey: other.PublicKey()})
	var hk *sshx.HostKeyError
	if !errors.As(err, &hk) || hk.Want == hk.Got {
		t.Fatalf("a wrong host key was accepted: %v", err)
	}
	if _, err := sshx.Dial(context.Background(), sshx.Config{Addr: sshd.Addr, Signer: other, HostKey: sshd.HostKey}); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("an unknown client key was accepted: %v", err)
	}
	if _, err := sshx.Dial(context.Background(), sshx.Config{Addr: sshd.Addr, Signer: sshd.Client}); err == nil || !strings.Contains(err.Error(), "no host key to pin") {
		t.Fatalf("dialled without a host key: %v", err)
	}
}

// cutProxy forwards TCP to target until cut, as a network that goes away.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in) }()
			go func() { _, _ = io.Copy(in, out) }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// A connection lost mid-use is noticed by the keep-alives and named in the
// errors of what used it.
func TestConnectionLostIsExplained(t *testing.T) {
	sshd := testenv.StartSSHD(t)
	proxy := newCutProxy(t, sshd.Addr)
	conn, err := sshx.Dial(context.Background(), sshx.Config{Addr: proxy.ln.Addr().String(), Signer: sshd.Client, HostKey: sshd.HostKey, KeepAlive: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if out, err := conn.Run(context.Background(), "echo up"); err != nil || strings.TrimSpace(string(out)) != "up" {
		t.Fatalf("Run before the cut: %q %v", out, err)
	}
	proxy.cut()
	deadline := time.Now().Add(5 * time.Second)
	for conn.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := conn.Err(); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("Err() = %v after the cut", err)
	}
	if _, err := conn.DialUnix(context.Background(), "/run/buildkit.sock"); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("DialUnix after the cut: %v", err)
	}
	if err := conn.Close(); err != nil {
		t.Fatalf("Close after the cut: %v", err)
	}
}

// silentServer is an SSH server that authenticates and answers keep-alives
// but never answers a channel open: a connection that looks alive while
// every session or forwarded socket waits for ever.
func silentServer(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				go func() {
					for r := range reqs {
						_ = r.Reply(true, nil)
					}
				}()
				var pending []ssh.NewChannel
				for ch := range chans {
					pending = append(pending, ch) // never accepted, never rejected
				}
				_ = pending
			}()
		}
	}()
	return ln.Addr().String(), hostKey.PublicKey()
}

// A server that never answers a channel open: Run and DialUnix give up when
// their context ends, saying what got no answer, instead of waiting for ever.
func TestChannelOpenWithoutAnswerGivesUp(t *testing.T) {
	addr, hostKey := silentServer(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	conn, err := sshx.Dial(context.Background(), sshx.Config{Addr: addr, Signer: signer, HostKey: hostKey})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := conn.Run(ctx, "true"); err == nil || !strings.Contains(err.Error(), "session: no answer") {
		t.Fatalf("Run: %v", err)
	}
	if _, err := conn.DialUnix(ctx, "/run/buildkit/buildkitd.sock"); err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("DialUnix: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %s", d)
	}
}

// A command cancelled while it writes: Run returns the context's error at
// once, and what the session delivers after never reaches the caller's
// buffer (under -race: no write races the caller's read).
func TestRunCancelledMidOutput(t *testing.T) {
	sshd := testenv.StartSSHD(t)
	conn, err := sshx.Dial(context.Background(), sshx.Config{Addr: sshd.Addr, Signer: sshd.Client, HostKey: sshd.HostKey})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		out, err := conn.Run(ctx, "yes lian-build")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %d bytes, %v; want the deadline", len(out), err)
		}
		_ = strings.Count(string(out), "\n")
	}
}

// Redial reaches the same machine on a new connection, the host key the
// first one saw pinned (a connection trusting the first key pins it too),
// and works after the first is closed.
func TestRedial(t *testing.T) {
	sshd := testenv.StartSSHD(t)
	first, err := sshx.Dial(context.Background(), sshx.Config{Addr: sshd.Addr, Signer: sshd.Client, TrustFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := first.Redial(context.Background())
	first.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if out, err := fresh.Run(context.Background(), "echo again"); err != nil || strings.TrimSpace(string(out)) != "again" {
		t.Fatalf("over the new connection: %q %v", out, err)
	}
	if !bytes.Equal(fresh.HostKey().Marshal(), sshd.HostKey.Marshal()) {
		t.Error("the new connection pinned another host key")
	}
}
