package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a service of the test world run as a process of its own, as
// it runs in production (a gateway replica, a pool replica, a NATS node):
// started, ended with a signal, started again with the same command line,
// its output appended to one log across its lives.
type Process struct {
	Name    string
	Args    []string // the program and its arguments
	Env     []string // added to this process's environment
	LogPath string
	// Addr is where it listens: Start returns once it accepts a
	// connection there ("": once it has started).
	Addr string
	// ReadyWithin bounds that wait (default 90 s: a loaded 2-core machine).
	ReadyWithin time.Duration
	// StopWithin is how long Stop waits after its signal before it
	// kills (default 60 s).
	StopWithin time.Duration

	mu   sync.Mutex
	life *life // the current or last run
}

// life is one run of a Process: err is how it exited, once exited is closed.
type life struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// Start starts the process (again), and waits until it listens on Addr. A
// process that exits meanwhile is an error carrying its log's end.
func (p *Process) Start() error {
	l, err := p.launch()
	if err != nil || p.Addr == "" {
		return err
	}
	within := p.ReadyWithin
	if within <= 0 {
		within = 90 * time.Second
	}
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if closed(l.exited) {
			return fmt.Errorf("%s exited at start: %s", p.Name, p.logTail(2000))
		}
		if c, err := net.Dial("tcp", p.Addr); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("%s did not listen on %s in %s: %s", p.Name, p.Addr, within, p.logTail(2000))
}

func (p *Process) launch() (*life, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.life != nil && !closed(p.life.exited) {
		return nil, fmt.Errorf("%s runs", p.Name)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	l := &life{cmd: exec.Command(p.Args[0], p.Args[1:]...), exited: make(chan struct{})}
	l.cmd.Stdout, l.cmd.Stderr = logf, logf
	if len(p.Env) > 0 {
		l.cmd.Env = append(os.Environ(), p.Env...)
	}
	if err := l.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	go func() { l.err = l.cmd.Wait(); close(l.exited) }()
	p.life = l
	return l, nil
}

// Stop sends sig and waits for the process to end, killing it after
// StopWithin; it returns how the process exited (nil: status 0). A process
// that does not run is left as it is.
func (p *Process) Stop(sig syscall.Signal) error {
	p.mu.Lock()
	l := p.life
	p.mu.Unlock()
	if l == nil || closed(l.exited) {
		return nil
	}
	within := p.StopWithin
	if within <= 0 {
		within = 60 * time.Second
	}
	_ = l.cmd.Process.Signal(sig)
	select {
	case <-l.exited:
	case <-time.After(within):
		_ = l.cmd.Process.Kill()
		<-l.exited
	}
	return l.err
}

// StopAtCleanup stops the process with sig when the test ends, and logs
// its log's end if the test failed.
func (p *Process) StopAtCleanup(t testing.TB, sig syscall.Signal) {
	t.Cleanup(func() {
		_ = p.Stop(sig)
		if t.Failed() {
			t.Logf("%s's log (its end):\n%s", p.Name, p.logTail(6000))
		}
	})
}

// Pid is the running process's id (0: it does not run).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.life == nil || closed(p.life.exited) {
		return 0
	}
	return p.life.cmd.Process.Pid
}

// Log is everything the process wrote in all its lives.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

func (p *Process) logTail(n int) string {
	s := p.Log()
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
