// Package netns reaches into the network namespaces the test world makes:
// listeners opened inside one, and forwards from one to this machine's
// loopback.
package netns

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Forwarder gives a namespace a route to services of this machine's
// loopback (a test registry): it listens on IP:PORT inside the namespace
// and connects each connection to 127.0.0.1:PORT here, as a real server
// reaches a registry on its network.
type Forwarder struct {
	listeners []net.Listener
	wg        sync.WaitGroup
}

// Forward forwards each port into the namespace ns, listening there on
// ip (127.0.0.1: a buildkitd in the namespace and one outside it reach the
// same registry at the same address).
func Forward(ns, ip string, ports []int) (*Forwarder, error) {
	f := &Forwarder{}
	for _, port := range ports {
		ln, err := ListenIn(ns, "tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			f.Close()
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

// ListenIn opens a listener inside a network namespace.
func ListenIn(ns, network, addr string) (ln net.Listener, err error) {
	err = Do(ns, func() error {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Do runs fn on a thread switched into the namespace ns, which then
// switches back: sockets fn opens stay in the namespace.
func Do(ns string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return err
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread cannot go back: leave it locked so that it dies with
		// this goroutine instead of serving others in the wrong namespace.
		runtime.LockOSThread()
		return fmt.Errorf("back from %s: %w", ns, err)
	}
	return ferr
}

func (f *Forwarder) serve(ln net.Listener, to string) {
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

// Close stops listening and waits for the connections to end.
func (f *Forwarder) Close() {
	if f == nil {
		return
	}
	for _, ln := range f.listeners {
		ln.Close()
	}
	f.wg.Wait()
}
