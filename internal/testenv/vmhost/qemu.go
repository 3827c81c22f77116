package vmhost

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lian-build/action/internal/testenv/syncbuf"
)

// Accel is how VMs run here: "kvm" when a guest's kernel boots under KVM
// on this machine, else "tcg" (emulation). A nested guest may hang before
// its kernel starts although /dev/kvm exists, so KVM is judged by a boot,
// once per boot of this machine (remembered in CacheDir);
// LIAN_VM_ACCEL=kvm|tcg skips the probe.
func Accel(ctx context.Context, img Image) string {
	accelOnce.Do(func() {
		if a := os.Getenv("LIAN_VM_ACCEL"); a == "kvm" || a == "tcg" {
			accel = a
			return
		}
		boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
		memo := filepath.Join(CacheDir(), "accel-"+strings.TrimSpace(string(boot)))
		if b, err := os.ReadFile(memo); err == nil && (string(b) == "kvm" || string(b) == "tcg") {
			accel = string(b)
			return
		}
		accel = probeAccel(ctx, img)
		_ = os.WriteFile(memo, []byte(accel), 0o644)
	})
	return accel
}

var (
	accelOnce sync.Once
	accel     string
)

func probeAccel(ctx context.Context, img Image) string {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return "tcg"
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var out syncbuf.Buffer
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults", "-display", "none",
		"-no-reboot", "-serial", "stdio", "-kernel", img.Kernel, "-append", "console=ttyS0 panic=-1 rdinit=/nonexistent")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "tcg"
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return pick(out.String())
		case <-ctx.Done():
			<-done
			return pick(out.String())
		case <-tick.C:
			if strings.Contains(out.String(), "Linux version") {
				cancel()
				<-done
				return "kvm"
			}
		}
	}
}

func pick(console string) string {
	if strings.Contains(console, "Linux version") {
		return "kvm"
	}
	return "tcg"
}

// qemuArgs are a server's VM: its type's cores and memory, the image's
// kernel booting the overlay, a virtio NIC on the namespace's tap, the
// DMI of a Hetzner server whose serial is the server's id (cloud-init's
// Hetzner datasource checks both), the guest agent's port, and the serial
// console on stdout.
// A NoCloud VM (seed: its seed directory) has QEMU's own DMI and the seed
// as a read-only FAT disk labelled cidata instead.
func qemuArgs(accel string, img Image, overlay, agent string, cores, memMiB int, mac string, serverID int64, seed string) []string {
	cpu, acc := "max", "tcg,thread=multi"
	if accel == "kvm" {
		cpu, acc = "host", "kvm"
	}
	platform := []string{"-smbios", fmt.Sprintf("type=1,manufacturer=Hetzner,product=vServer,serial=%d", serverID)}
	if seed != "" {
		platform = []string{"-drive", "if=virtio,format=raw,readonly=on,file.driver=vvfat,file.dir=" + seed + ",file.label=cidata"}
	}
	return append([]string{
		"-name", fmt.Sprintf("lian-server-%d", serverID), "-accel", acc, "-cpu", cpu,
		"-smp", fmt.Sprint(cores), "-m", fmt.Sprint(memMiB),
		"-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
		"-kernel", img.Kernel, "-initrd", img.Initrd,
		"-append", "root=LABEL=root rw console=ttyS0 net.ifnames=0 panic=-1",
		"-drive", "file=" + overlay + ",if=virtio,format=qcow2,cache=unsafe,discard=unmap",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0,mac=" + mac,
		"-chardev", "socket,id=qga,path=" + agent + ",server=on,wait=off",
		"-device", "virtio-serial", "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
	}, platform...)
}

// lineWriter prefixes each line written to w (a VM's console in the test log).
type lineWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(l.buf[:i]), "\r")
		l.buf = l.buf[i+1:]
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, line)
	}
	return len(p), nil
}
