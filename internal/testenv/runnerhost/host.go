// Package runnerhost is the machine behind a fake Hetzner server: its own
// network namespace with its own address on a veth pair, its own mount
// namespace, a real sshd that accepts only the lease's key, and a buildkitd
// with runc in a cgroup holding the server type's memory (a local runner
// whose socket the mount namespace shows at /run/buildkit). Stopping it
// removes all of that.
package runnerhost

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/netns"
)

// Hosts starts runner hosts for the fake API.
type Hosts struct {
	// Options are the settings of the local provider that runs each host's
	// buildkitd and cgroup (DaemonInCgroup: the cgroup stands for the
	// machine). Each host adds the plain-HTTP registries its user-data
	// writes into buildkitd.toml, as cloud-init would.
	Options local.Options
	Dir     string // per-host files (sshd config, keys)
	// RefuseKeys makes sshd accept no key (a server that refuses the lease's key).
	RefuseKeys bool
	// Forward are ports of this machine's loopback (a test registry) that
	// every host's buildkitd, in the host's network namespace, reaches at
	// 127.0.0.1:PORT, as a server reaches a registry on its network. The
	// plain-HTTP registries of a server's user-data are forwarded too.
	Forward []int
	// SlowBoots are how many of the next servers take BootDelay longer to
	// answer the API's create; Unreachable, how many of the next servers'
	// sshd dies as it starts (a server that never becomes reachable). Both
	// are the cloud's faults, for tests to switch on.
	SlowBoots, Unreachable atomic.Int32
	BootDelay              time.Duration

	mu    sync.Mutex
	hosts map[int64]*host
}

type host struct {
	ns     string
	sshd   *exec.Cmd
	runner compute.Runner
	lease  string
	daemon int // buildkitd's pid
	dir    string
	fwd    *netns.Forwarder
}

var _ fakehcloud.Hosts = (*Hosts)(nil)

// tag tells this process's hosts from another's (test packages run in
// parallel, each with a fake whose server ids start at the same number).
var tag = os.Getpid() & 0xffff

// Prefix is the name every network namespace of this process's hosts starts with.
func Prefix() string { return fmt.Sprintf("lianrh-%04x-", tag) }

// Start makes the host for a server and returns its address.
func (h *Hosts) Start(ctx context.Context, spec fakehcloud.HostSpec) (string, error) {
	if take(&h.SlowBoots) {
		select {
		case <-time.After(h.BootDelay):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	ip, err := h.start(ctx, spec)
	if err == nil && take(&h.Unreachable) {
		h.Kill(spec.ServerID)
	}
	return ip, err
}

// take takes one from n when it is above zero.
func take(n *atomic.Int32) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

func (h *Hosts) start(ctx context.Context, spec fakehcloud.HostSpec) (string, error) {
	n := spec.ServerID % 250
	hs := &host{ns: fmt.Sprintf("%s%d", Prefix(), spec.ServerID), dir: filepath.Join(h.Dir, fmt.Sprint(spec.ServerID)),
		lease: fmt.Sprintf("rh-%04x-%d", tag, spec.ServerID)}
	fail := func(err error) (string, error) {
		return "", errors.Join(err, hs.stop(context.WithoutCancel(ctx)))
	}
	tier, err := sizing.HCloud.Lookup(spec.ServerType)
	if err != nil {
		tier = sizing.HCloud[0]
	}
	opts := h.Options
	opts.InsecureRegistries = append(slices.Clone(opts.InsecureRegistries), RegistriesIn(spec.UserData)...)
	// 10.(64+pid%128).(id%250).0/30: one subnet per host and process.
	net2 := 64 + tag%128
	hostIP, nsIP := fmt.Sprintf("10.%d.%d.1", net2, n), fmt.Sprintf("10.%d.%d.2", net2, n)
	veth := fmt.Sprintf("r%04x%d", tag, spec.ServerID%10000)
	for _, args := range [][]string{
		{"netns", "add", hs.ns},
		{"link", "add", veth + "a", "type", "veth", "peer", "name", veth + "b"},
		{"link", "set", veth + "b", "netns", hs.ns},
		{"addr", "add", hostIP + "/30", "dev", veth + "a"},
		{"link", "set", veth + "a", "up"},
		{"-n", hs.ns, "addr", "add", nsIP + "/30", "dev", veth + "b"},
		{"-n", hs.ns, "link", "set", veth + "b", "up"},
		{"-n", hs.ns, "link", "set", "lo", "up"},
	} {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fail(fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out))
		}
	}
	if hs.fwd, err = netns.Forward(hs.ns, "127.0.0.1", forwarded(h.Forward, opts.InsecureRegistries)); err != nil {
		return fail(err)
	}
	// buildkitd runs in the host's network namespace, as on a VM: its
	// loopback is sshd's (a remote forward reaches it) and the registry's
	// forward.
	if opts.Buildkitd, err = hs.inNamespace(opts.Buildkitd); err != nil {
		return fail(err)
	}
	prov, err := local.New(opts)
	if err != nil {
		return fail(err)
	}
	r, err := prov.Spawn(ctx, tier, compute.Lease{ID: hs.lease, TTL: time.Hour})
	if err != nil {
		return fail(err)
	}
	hs.runner = r
	if err := hs.findDaemon(); err != nil {
		return fail(err)
	}
	socketDir := filepath.Dir(strings.TrimPrefix(r.Info().Address, "unix://"))
	keys := spec.SSHKeys
	if h.RefuseKeys {
		keys = nil
	}
	if err := hs.writeLayout(h.Options.Buildkitd, opts.InsecureRegistries); err != nil {
		return fail(err)
	}
	if err := hs.startSSHD(nsIP, socketDir, keys, spec.Volumes); err != nil {
		return fail(err)
	}
	h.mu.Lock()
	if h.hosts == nil {
		h.hosts = map[int64]*host{}
	}
	h.hosts[spec.ServerID] = hs
	h.mu.Unlock()
	return nsIP, nil
}

// inNamespace is a wrapper that runs buildkitd (a path, or "buildkitd"
// on PATH) in the host's network namespace, keeping its pid.
func (hs *host) inNamespace(buildkitd string) (string, error) {
	if buildkitd == "" {
		buildkitd = "buildkitd"
	}
	bin, err := exec.LookPath(buildkitd)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(hs.dir, 0o700); err != nil {
		return "", err
	}
	wrapper := filepath.Join(hs.dir, "buildkitd")
	script := fmt.Sprintf("#!/bin/sh\nexec nsenter --net=/run/netns/%s -- %q \"$@\"\n", hs.ns, bin)
	return wrapper, os.WriteFile(wrapper, []byte(script), 0o755)
}

// sshdDropins is where a host's sshd reads its drop-ins (its own /run).
const sshdDropins = "/run/lian-build/sshd.d"

// startSSHD runs sshd in the host's network namespace and in a mount
// namespace of its own, where the runner's socket directory is
// /run/buildkit, as on a VM. The machine's build cgroup is the lease's
// (runner.env names it for the counters and the recycle script): a bind
// mount of it over lian-build would break runc, which finds its cgroups by
// the paths /proc/self/cgroup shows.
func (hs *host) startSSHD(ip, socketDir string, keys []string, volumes []fakehcloud.VolumeSpec) error {
	if err := os.MkdirAll(hs.dir, 0o700); err != nil {
		return err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return err
	}
	files := map[string]string{
		"host_key": string(pem.EncodeToMemory(block)),
		"sshd_config": fmt.Sprintf("Include "+sshdDropins+"/*.conf\nPort 22\nListenAddress %s\nHostKey %[2]s/host_key\nAuthorizedKeysFile .ssh/authorized_keys\nPidFile %[2]s/sshd.pid\n"+
			"PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"+
			"AllowStreamLocalForwarding yes\nAllowTcpForwarding yes\nX11Forwarding no\nUseDNS no\nPrintLastLog no\nPrintMotd no\nLogLevel ERROR\n", ip, hs.dir),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(hs.dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return err
	}
	// A VM's root has its own home: this machine's shell start-up files
	// (and their locks) stay out of the host's sessions.
	home := filepath.Join(hs.dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "authorized_keys"), []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	// /run is the host's own (a tmpfs in its mount namespace): nothing it
	// creates there shows on this machine.
	// Volumes are mounted where Hetzner's automount puts them, on a /mnt of
	// the host's own.
	var mounts strings.Builder
	if len(volumes) > 0 {
		mounts.WriteString("mount -t tmpfs -o mode=755 tmpfs /mnt || exit 1\n")
	}
	for _, v := range volumes {
		fmt.Fprintf(&mounts, "mkdir -p %[2]q && mount -o loop %[1]q %[2]q || exit 1\n", v.Image, v.Mount)
	}
	script := fmt.Sprintf(`mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/sshd /run/buildkit /run/lian-build/sshd.d && mount --bind %q /run/buildkit && mount --bind %q /root || exit 1
cp %q /run/lian-build/runner.env || exit 1
%sexec /usr/sbin/sshd -D -e -f %q`, socketDir, home, filepath.Join(hs.dir, "runner.env"), mounts.String(), filepath.Join(hs.dir, "sshd_config"))
	// nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup tree.
	cmd := exec.Command("nsenter", "--net=/run/netns/"+hs.ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	logf, err := os.Create(filepath.Join(hs.dir, "sshd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	hs.sshd = cmd
	return nil
}

// writeLayout writes what a VM's image and cloud-init would hold for the
// runner script (remote.RunnerScript): buildkitd's config, with its root
// in the host's directory and its steps under lian-build/steps, and the
// paths that differ from a VM's, in runner.env.
func (hs *host) writeLayout(buildkitd string, insecure []string) error {
	bin, err := exec.LookPath(buildkitd)
	if err != nil {
		return err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	if err := os.MkdirAll(hs.dir, 0o700); err != nil {
		return err
	}
	cfg := filepath.Join(hs.dir, "buildkitd.toml")
	// The machine's build cgroup is the lease's (it holds the server
	// type's memory): lian-build/<lease>, not a VM's lian-build.
	cg := "lian-build/" + hs.lease
	if err := os.WriteFile(cfg, []byte(local.BuildkitdConfig(filepath.Join(hs.dir, "buildkit"), remote.DefaultSocket, cg+"/steps", insecure)), 0o600); err != nil {
		return err
	}
	// sshd's drop-ins are the host's own (its /run), included first by its
	// config as Debian's sshd_config includes sshd_config.d. The warm state
	// stays in the host's directory on this machine's disk (WARM_IMAGE
	// empty), where the tests read it from outside the host's mounts; real
	// VMs (vmhost) mount it from an XFS image.
	env := fmt.Sprintf("ROOT=%q\nCONFIG=%q\nBUILDKITD=%q\nBUILDCTL=%q\nLOG=%q\nB=%q\nWARM=%q\nWARM_IMAGE=\nSYSTEM_PREP=0\nSSHD_CONFIG=%q\nSSHD_DROPIN=%q\nSSHD_PID=%q\n",
		filepath.Join(hs.dir, "buildkit"), cfg, bin, filepath.Join(filepath.Dir(bin), "buildctl"), filepath.Join(hs.dir, "buildkitd.log"), cg,
		filepath.Join(hs.dir, "warm"), filepath.Join(hs.dir, "sshd_config"), sshdDropins+"/lian-build-pool.conf", filepath.Join(hs.dir, "sshd.pid"))
	return os.WriteFile(filepath.Join(hs.dir, "runner.env"), []byte(env), 0o600)
}

var registryTable = regexp.MustCompile(`\[registry\."([^"]+)"\]`)

// RegistriesIn are the registries a server's user-data configures in its
// buildkitd.toml.
func RegistriesIn(userData string) []string {
	var out []string
	for _, m := range registryTable.FindAllStringSubmatch(userData, -1) {
		out = append(out, m[1])
	}
	return out
}

// forwarded are the ports a host reaches on this machine's loopback: the
// ones asked for, and those of the plain-HTTP registries its buildkitd is
// configured for (a server reaches its registries on its network).
func forwarded(ports []int, registries []string) []int {
	out := slices.Clone(ports)
	for _, r := range registries {
		host, port, err := net.SplitHostPort(r)
		if err != nil || (host != "127.0.0.1" && host != "localhost") {
			continue
		}
		if n, err := strconv.Atoi(port); err == nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Stop removes a server's host.
func (h *Hosts) Stop(ctx context.Context, serverID int64) error {
	h.mu.Lock()
	hs := h.hosts[serverID]
	delete(h.hosts, serverID)
	h.mu.Unlock()
	if hs == nil {
		return nil
	}
	return hs.stop(ctx)
}

// IDs are the servers whose hosts run.
func (h *Hosts) IDs() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Collect(maps.Keys(h.hosts))
}

// Kill kills a server's sshd and its sessions (a connection cut from the runner's side).
func (h *Hosts) Kill(serverID int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hs := h.hosts[serverID]; hs != nil {
		hs.killAll()
	}
}

// StepRunning reports whether a RUN step runs on the server: a container's
// cgroup under the lease's holds a process.
func (h *Hosts) StepRunning(serverID int64) bool {
	h.mu.Lock()
	hs := h.hosts[serverID]
	h.mu.Unlock()
	if hs == nil {
		return false
	}
	running := false
	for _, root := range []string{"/sys/fs/cgroup/memory/lian-build/" + hs.lease, "/sys/fs/cgroup/lian-build/" + hs.lease} {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || running || d.IsDir() || d.Name() != "cgroup.procs" || filepath.Dir(p) == root || filepath.Base(filepath.Dir(p)) == "daemon" {
				return nil
			}
			b, _ := os.ReadFile(p)
			running = len(strings.TrimSpace(string(b))) > 0
			return nil
		})
	}
	return running
}

// Run runs a shell script on a server's host — in its network and mount
// namespaces, as root — as a process on the VM would.
func (h *Hosts) Run(serverID int64, script string) ([]byte, error) {
	h.mu.Lock()
	hs := h.hosts[serverID]
	h.mu.Unlock()
	if hs == nil || hs.sshd == nil {
		return nil, fmt.Errorf("no runner host for server %d", serverID)
	}
	pid := fmt.Sprint(hs.sshd.Process.Pid)
	return exec.Command("nsenter", "-t", pid, "-n", "-m", "sh", "-c", script).CombinedOutput()
}

// HostDir is a server's host directory (its buildkitd's root is Dir/buildkit).
func (h *Hosts) HostDir(serverID int64) string { return filepath.Join(h.Dir, fmt.Sprint(serverID)) }

// KillDaemon kills a server's buildkitd, as the kernel or a crash would:
// every buildkitd in its network namespace (a pool VM's runner script
// starts its own at each grant).
func (h *Hosts) KillDaemon(serverID int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hs := h.hosts[serverID]; hs != nil {
		for _, pid := range hs.pidsNamed("buildkitd") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// CutSessions kills a server's SSH sessions but not its sshd: every
// connection to it breaks, and the next one is taken.
func (h *Hosts) CutSessions(serverID int64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := h.hosts[serverID]
	if hs == nil || hs.sshd == nil {
		return 0
	}
	n := 0
	for _, pid := range hs.pidsNamed("sshd", "sshd-session") {
		if pid != hs.sshd.Process.Pid && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// FillMemory starts a process that allocates without bound in a child of
// the server's build cgroup, as a runaway step would: the cgroup's limit
// makes the kernel kill it or the build. The runner's recycle removes what
// is left; the process is killed after a minute at the latest.
func (h *Hosts) FillMemory(serverID int64) error {
	h.mu.Lock()
	hs := h.hosts[serverID]
	h.mu.Unlock()
	if hs == nil {
		return fmt.Errorf("no runner host for server %d", serverID)
	}
	cg := "/sys/fs/cgroup/memory/lian-build/" + hs.lease
	if _, err := os.Stat(cg); err != nil {
		return fmt.Errorf("server %d has no build cgroup: %w", serverID, err)
	}
	cmd := exec.Command("sh", "-c", `mkdir -p "$0/fill" && echo $$ >"$0/fill/cgroup.procs" && exec tail /dev/zero`, cg)
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		t := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
		_ = cmd.Wait()
		t.Stop()
	}()
	return nil
}

// pidsNamed are the processes in the host's network namespace whose
// command is one of names.
func (hs *host) pidsNamed(names ...string) []int {
	out, _ := exec.Command("ip", "netns", "pids", hs.ns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if slices.Contains(names, strings.TrimSpace(string(comm))) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// DaemonOOMFirst makes a server's buildkitd the kernel's first choice when
// the host runs out of memory (a VM where the daemon is the largest
// process). Containers started before keep their own score: buildkitd
// gives each its own score when it starts it.
func (h *Hosts) DaemonOOMFirst(serverID int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := h.hosts[serverID]
	if hs == nil {
		return fmt.Errorf("no runner host for server %d", serverID)
	}
	return os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", hs.daemon), []byte("1000"), 0o644)
}

// findDaemon finds buildkitd in the lease's cgroup, where the provider put it
// (local.Options.DaemonInCgroup).
func (hs *host) findDaemon() error {
	var b []byte
	var err error
	for _, f := range []string{"memory/lian-build/%s/cgroup.procs", "lian-build/%s/daemon/cgroup.procs"} {
		if b, err = os.ReadFile(filepath.Join("/sys/fs/cgroup", fmt.Sprintf(f, hs.lease))); err == nil {
			break
		}
	}
	pids := strings.Fields(string(b))
	if err != nil || len(pids) != 1 {
		return fmt.Errorf("runner host %s: buildkitd is not alone in its cgroup (is the provider's DaemonInCgroup set?): %v %v", hs.lease, pids, err)
	}
	hs.daemon, err = strconv.Atoi(pids[0])
	return err
}

// killAll kills every process in the host's namespace but the machine's
// build cgroup (buildkitd and its steps, which the runner stops): sshd and
// its sessions.
func (hs *host) killAll() {
	script := fmt.Sprintf(`keep=" $(find /sys/fs/cgroup/memory/lian-build/%[2]s /sys/fs/cgroup/lian-build/%[2]s -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' ') "
for p in $(ip netns pids %[1]s 2>/dev/null); do case "$keep" in *" $p "*) ;; *) kill -9 "$p" ;; esac; done`, hs.ns, hs.lease)
	_ = exec.Command("sh", "-c", script).Run()
}

func (hs *host) stop(ctx context.Context) error {
	var errs []error
	hs.killAll()
	if hs.sshd != nil {
		_ = hs.sshd.Wait()
	}
	// The daemon first: the forwards wait for its connections to end.
	if hs.runner != nil {
		errs = append(errs, hs.runner.Destroy(ctx))
	}
	hs.fwd.Close()
	if out, err := exec.Command("ip", "netns", "del", hs.ns).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
		errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", hs.ns, err, out))
	}
	errs = append(errs, os.RemoveAll(hs.dir))
	return errors.Join(errs...)
}
