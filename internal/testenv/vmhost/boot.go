package vmhost

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A VM under TCG boots on this machine's cores, and guests booting side by
// side starve each other: a CI run (hcloud's and the pool's tests, one
// process each) saw a guest's kernel in soft lockups 280 s after it
// started, past its test's spawn bound. So VMs boot a few at a time across
// every process of the machine: a VM's qemu starts when it holds a boot
// slot (an flock), which it keeps until cloud-init says it has finished,
// the VM exits, or bootHold has passed. Start does not wait for the slot:
// a server waiting for one is a server that boots slowly.

// bootHold bounds how long one VM keeps a slot.
const bootHold = 6 * time.Minute

// bootSlotDir holds the slots' lock files, one directory for the machine.
var bootSlotDir = filepath.Join(os.TempDir(), "lian-build-vmboot")

// bootSlots is how many VMs boot at once: one per two cores.
func bootSlots() int { return max(1, runtime.NumCPU()/2) }

// bootDone is cloud-init's last line on the console.
func bootDone(console string) bool {
	i := strings.LastIndex(console, "Cloud-init v. ")
	return i >= 0 && strings.Contains(console[i:], " finished at ")
}

// acquireBootSlot waits for a free slot until quit is closed. The slot is
// released by closing the returned file (or by the process's exit).
func acquireBootSlot(quit <-chan struct{}) (*os.File, error) {
	dir := bootSlotDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for {
		for i := range bootSlots() {
			f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("slot-%d", i)), os.O_CREATE|os.O_RDWR, 0o600)
			if err != nil {
				return nil, err
			}
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
				return f, nil
			}
			f.Close()
		}
		select {
		case <-quit:
			return nil, errors.New("stopped while waiting for a boot slot")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// run boots the VM when a slot is free and lives until qemu exits; it
// closes v.exited whatever happens.
func (v *vm) run(args []string, out io.Writer) {
	defer close(v.exited)
	waited := time.Now()
	slot, err := acquireBootSlot(v.quit)
	if err != nil {
		fmt.Fprintf(out, "vmhost: server %d: %v\n", v.id, err)
		return
	}
	release := func() {
		if slot != nil {
			slot.Close()
			slot = nil
		}
	}
	defer release()
	if w := time.Since(waited); w > time.Second {
		fmt.Fprintf(out, "vmhost: server %d: boots after waiting %s for a boot slot\n", v.id, w.Round(time.Second))
	}
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + v.net.ns, "qemu-system-x86_64"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := v.start(cmd); err != nil {
		fmt.Fprintf(out, "vmhost: server %d: %v\n", v.id, err)
		return
	}
	exit := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exit) }()
	hold := time.After(bootHold)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for slot != nil {
		select {
		case <-exit:
			return
		case <-hold:
			release()
		case <-tick.C:
			if bootDone(v.console.String()) {
				release()
			}
		}
	}
	<-exit
}

// start starts qemu unless the VM was stopped meanwhile.
func (v *vm) start(cmd *exec.Cmd) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	select {
	case <-v.quit:
		return errors.New("stopped before it booted")
	default:
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start qemu: %w", err)
	}
	v.proc = cmd.Process
	return nil
}

// signal sends sig to qemu, if it runs; stop also keeps it from starting.
func (v *vm) signal(sig os.Signal, stop bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if stop {
		v.quitOnce.Do(func() { close(v.quit) })
	}
	if v.proc != nil {
		_ = v.proc.Signal(sig)
	}
}
