// Package vmhost backs fake servers with real VMs: a qemu VM per server
// booting Debian's cloud kernel on a copy-on-write overlay of a guest image
// (debootstrap: systemd, openssh-server, cloud-init, runc, …), its NIC a
// tap in a network namespace of its own that is its gateway, its DHCP
// server and Hetzner's metadata service. The real cloud-init finds the
// Hetzner datasource by the VM's DMI, takes an ephemeral DHCP lease, reads
// the server's metadata and user-data, and runs it. Boot time is real.
package vmhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/netns"
	"github.com/lian-build/action/internal/testenv/syncbuf"
)

// Hosts starts a VM per server for the fake API.
type Hosts struct {
	Image Image
	Dir   string // per-VM files: overlay, agent socket, console
	// MemoryMiB replaces a server type's memory (the test world's VMs may
	// be smaller than the type they stand for); absent: the type's.
	MemoryMiB map[string]int
	// Forward are ports of this machine's loopback (a registry, the runner
	// downloads) every VM reaches at ServicesIP:PORT.
	Forward []int
	// NoCloud makes the VMs Proxmox's: QEMU's own DMI, no metadata service,
	// and a NoCloud seed drive (label cidata: meta-data, user-data,
	// vendor-data, network-config) as Proxmox's cloud-init drive; the
	// address comes from the guest agent. Default: Hetzner's.
	NoCloud bool
	// Log, when set, receives every VM's serial console, line by line.
	Log io.Writer

	mu  sync.Mutex
	vms map[int64]*vm
}

var _ fakehcloud.Hosts = (*Hosts)(nil)

type vm struct {
	id     int64
	dir    string
	net    *vmNet
	exited chan struct{} // closed when qemu has exited or will not start (nil: not launched)
	quit   chan struct{} // closed by stop: qemu must not start any more

	mu       sync.Mutex
	proc     *os.Process // qemu, once started
	quitOnce sync.Once
	console  *syncbuf.Buffer
	meta     *metadata
	dhcp     *server4.Server
	http     *http.Server
	fwd      *netns.Forwarder
	wg       sync.WaitGroup
}

// tag tells this process's VMs from another's.
var tag = os.Getpid() & 0xffff

// Prefix is the name every network namespace of this process's VMs starts with.
func Prefix() string { return fmt.Sprintf("lianvm-%04x-", tag) }

// Start makes the server's network and starts its VM; it does not wait
// for the VM to boot (a real server is "running" before its sshd answers).
func (h *Hosts) Start(ctx context.Context, spec fakehcloud.HostSpec) (string, error) {
	if len(spec.Volumes) > 0 {
		return "", errors.New("vm runner hosts: volumes are not attached yet")
	}
	v := &vm{id: spec.ServerID, dir: filepath.Join(h.Dir, fmt.Sprint(spec.ServerID)), net: newVMNet(tag, spec.ServerID), quit: make(chan struct{}), console: &syncbuf.Buffer{}}
	fail := func(err error) (string, error) {
		return "", errors.Join(fmt.Errorf("vm for server %d: %w", spec.ServerID, err), v.stop())
	}
	if err := os.MkdirAll(v.dir, 0o700); err != nil {
		return fail(err)
	}
	if err := v.net.up(ctx); err != nil {
		return fail(err)
	}
	if err := v.services(spec, h.Forward, !h.NoCloud); err != nil {
		return fail(err)
	}
	seed := ""
	if h.NoCloud {
		var err error
		if seed, err = v.writeSeed(spec); err != nil {
			return fail(err)
		}
	}
	overlay, base, format := v.overlay(), h.Image.Disk, "raw"
	if spec.Disk != "" {
		base, format = spec.Disk, "qcow2"
	}
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", format, "-b", base, overlay, "8G").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("qemu-img: %v: %s", err, out))
	}
	mem := int(spec.MemoryGB * 1024)
	if m, ok := h.MemoryMiB[spec.ServerType]; ok {
		mem = m
	}
	args := qemuArgs(Accel(ctx, h.Image), h.Image, overlay, v.agentSocket(), vcpus(spec.Cores), mem, v.net.MAC.String(), spec.ServerID, seed)
	var out io.Writer = v.console
	if h.Log != nil {
		out = io.MultiWriter(v.console, &lineWriter{w: h.Log, prefix: fmt.Sprintf("server %d │ ", spec.ServerID)})
	}
	// In the namespace, where the tap is; not bound to ctx: the VM lives
	// until Stop.
	v.exited = make(chan struct{})
	go v.run(args, out)
	h.mu.Lock()
	if h.vms == nil {
		h.vms = map[int64]*vm{}
	}
	h.vms[spec.ServerID] = v
	h.mu.Unlock()
	return v.net.GuestIP, nil
}

// services starts what the VM's network answers with: DHCP on the tap,
// Hetzner's metadata service (meta), and the forwards to this machine's
// services.
func (v *vm) services(spec fakehcloud.HostSpec, ports []int, meta bool) error {
	var err error
	if v.dhcp, err = v.net.dhcp(); err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	v.wg.Add(1)
	go func() { defer v.wg.Done(); _ = v.dhcp.Serve() }()
	v.meta = &metadata{spec: spec, mac: v.net.MAC.String(), ip: v.net.GuestIP}
	if v.fwd, err = netns.Forward(v.net.ns, ServicesIP, ports); err != nil {
		return err
	}
	if !meta {
		return nil
	}
	ln, err := netns.ListenIn(v.net.ns, "tcp", net.JoinHostPort(MetadataIP, "80"))
	if err != nil {
		return fmt.Errorf("metadata service: %w", err)
	}
	v.http = &http.Server{Handler: v.meta, ReadHeaderTimeout: 10 * time.Second}
	v.wg.Add(1)
	go func() { defer v.wg.Done(); _ = v.http.Serve(ln) }()
	return nil
}

func (v *vm) agentSocket() string { return filepath.Join(v.dir, "qga.sock") }

// overlay is the VM's disk: a copy-on-write overlay of what it boots.
func (v *vm) overlay() string { return filepath.Join(v.dir, "root.qcow2") }

// stop powers the VM off (a server's delete is not a shutdown) and removes
// its network and files.
func (v *vm) stop() error {
	if v.exited != nil {
		v.signal(syscall.SIGKILL, true)
		<-v.exited
	}
	if v.dhcp != nil {
		_ = v.dhcp.Close()
	}
	if v.http != nil {
		_ = v.http.Close()
	}
	v.fwd.Close()
	v.wg.Wait()
	return errors.Join(v.net.down(), os.RemoveAll(v.dir))
}

// Stop removes a server's VM.
func (h *Hosts) Stop(_ context.Context, serverID int64) error {
	if v := h.take(serverID); v != nil {
		return v.stop()
	}
	return nil
}

// take removes a server's VM from the hosts and returns it (nil: none).
func (h *Hosts) take(serverID int64) *vm {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.vms[serverID]
	delete(h.vms, serverID)
	return v
}

// Halt stops a server's VM as `qm stop` does — qemu, sent SIGTERM, writes
// its disk out as it exits — and keeps the disk: the returned file boots
// again, or backs a clone, as HostSpec.Disk; it lives in Dir until the
// caller removes it.
func (h *Hosts) Halt(_ context.Context, serverID int64) (string, error) {
	v := h.take(serverID)
	if v == nil {
		return "", fmt.Errorf("vm for server %d: not running", serverID)
	}
	if v.exited != nil {
		v.signal(syscall.SIGTERM, true)
		select {
		case <-v.exited:
		case <-time.After(30 * time.Second):
		}
	}
	disk := filepath.Join(h.Dir, "disks", fmt.Sprintf("%d-%d.qcow2", serverID, time.Now().UnixNano()))
	err := os.MkdirAll(filepath.Dir(disk), 0o700)
	if err == nil {
		err = os.Rename(v.overlay(), disk)
	}
	if err = errors.Join(err, v.stop()); err != nil {
		return "", fmt.Errorf("vm for server %d: halt: %w", serverID, err)
	}
	return disk, nil
}

var _ fakehcloud.Halter = (*Hosts)(nil)

func (h *Hosts) get(serverID int64) (*vm, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v := h.vms[serverID]; v != nil {
		return v, nil
	}
	return nil, fmt.Errorf("no VM for server %d", serverID)
}

// IDs are the servers whose VMs run.
func (h *Hosts) IDs() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Collect(maps.Keys(h.vms))
}

// Run runs a shell script in a server's VM as root, through its guest
// agent (the test world's console access; the server's key is the lease's).
func (h *Hosts) Run(ctx context.Context, serverID int64, script string) ([]byte, error) {
	v, err := h.get(serverID)
	if err != nil {
		return nil, err
	}
	return Agent{Socket: v.agentSocket()}.Exec(ctx, script)
}

// Addresses are a server's VM's IPv4 addresses by interface, as its guest
// agent reports them (an error while the agent does not run yet).
func (h *Hosts) Addresses(ctx context.Context, serverID int64) (map[string][]string, error) {
	v, err := h.get(serverID)
	if err != nil {
		return nil, err
	}
	return Agent{Socket: v.agentSocket()}.Addresses(ctx)
}

// Console is what a server's VM printed on its serial console so far.
func (h *Hosts) Console(serverID int64) string {
	v, err := h.get(serverID)
	if err != nil {
		return ""
	}
	return v.console.String()
}

// Metadata are the metadata paths a server's VM asked for.
func (h *Hosts) Metadata(serverID int64) []string {
	v, err := h.get(serverID)
	if err != nil {
		return nil
	}
	return v.meta.Requests()
}

// Leftovers are this process's VM namespaces and qemu processes still
// there (after every server was deleted: none).
func Leftovers() []string {
	var out []string
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), Prefix()) {
			out = append(out, "netns "+e.Name())
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "qemu-system-x86_64") && strings.Contains(string(b), "/run/netns/"+Prefix()) {
			out = append(out, "process "+filepath.Base(filepath.Dir(p)))
		}
	}
	return out
}

// vcpus are a VM's virtual CPUs: its type's cores, but no more than this
// machine has (emulated CPUs beyond the host's only compete for them).
func vcpus(cores int) int { return max(1, min(cores, runtime.NumCPU())) }
