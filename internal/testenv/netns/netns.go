package runnerhost

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// forwarder gives a runner host a route to services of this machine's
// loopback (a test registry): it listens on 127.0.0.1:PORT inside the
// host's network namespace and connects each connection to 127.0.0.1:PORT
// here, as a real server reaches a registry on its network. A buildkitd in
// the namespace and one outside it then reach the same registry at the
// same address.
type forwarder struct {
	listeners []net.Listener
	wg        sync.WaitGroup
}

// forward starts a forwarder for each port into the namespace ns.
func forward(ns string, ports []int) (*forwarder, error) {
	f := &forwarder{}
	for _, port := range ports {
		ln, err := listenIn(ns, fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			f.close()
			return nil, fmt.Errorf("forward port %d into %s: %w", port, ns, err)
		}
		f.listeners = append(f.listeners, ln)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.serve(ln, fmt.Sprintf("127.0.0.1:%d", port))
		}()
	}
	return f, nil
}

// listenIn opens a listener inside a network namespace: the socket is
// made on a thread switched into it, which then switches back.
func listenIn(ns, addr string) (net.Listener, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, err
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread cannot go back: leave it locked so that it dies with
		// this goroutine instead of serving others in the wrong namespace.
		runtime.LockOSThread()
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("back from %s: %w", ns, err)
	}
	return ln, lerr
}

func (f *forwarder) serve(ln net.Listener, to string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			up, err := net.Dial("tcp", to)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			<-done
		}()
	}
}

// close stops listening and waits for the connections to end.
func (f *forwarder) close() {
	if f == nil {
		return
	}
	for _, ln := range f.listeners {
		ln.Close()
	}
	f.wg.Wait()
}
