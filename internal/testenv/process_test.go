package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A process that exits at start is an error carrying its log; one that
// listens is ready, reports its pid, stops with a signal (its exit says
// so) and starts again.
func TestProcess(t *testing.T) {
	dir := t.TempDir()
	bad := &Process{Name: "bad", Args: []string{"sh", "-c", "echo no config; exit 3"}, LogPath: filepath.Join(dir, "bad.log"), Addr: "127.0.0.1:1"}
	if err := bad.Start(); err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), "no config") {
		t.Fatalf("a process that exits at start: %v", err)
	}
	port := FreePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := &Process{Name: "listener", Args: []string{os.Args[0], "-test.run=^TestListenerProcess$"}, Env: []string{"LIAN_TEST_LISTEN=" + addr},
		LogPath: filepath.Join(dir, "p.log"), Addr: addr}
	p.StopAtCleanup(t, syscall.SIGKILL)
	for round := range 2 {
		if err := p.Start(); err != nil {
			t.Fatalf("start %d: %v", round, err)
		}
		if err := p.Start(); err == nil {
			t.Fatal("a second start of a running process succeeded")
		}
		pid := p.Pid()
		if c, err := net.Dial("tcp", p.Addr); err != nil || pid == 0 {
			t.Fatalf("round %d: pid %d, dial %v", round, pid, err)
		} else {
			c.Close()
		}
		if err := p.Stop(syscall.SIGTERM); err == nil || !strings.Contains(err.Error(), "terminated") {
			t.Fatalf("stop: %v, want the signal's exit", err)
		}
		if p.Pid() != 0 {
			t.Fatal("a stopped process has a pid")
		}
	}
	if n := strings.Count(p.Log(), "up"); n != 2 {
		t.Fatalf("the log holds %d lives, want 2:\n%s", n, p.Log())
	}
}

// TestListenerProcess is TestProcess's listener, run as a process of its
// own (the test binary, told where to listen).
func TestListenerProcess(t *testing.T) {
	addr := os.Getenv("LIAN_TEST_LISTEN")
	if addr == "" {
		t.Skip("run by TestProcess")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("up")
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
