package pool_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/testenv/runnerhost"
)

// daemons are the buildkitd processes in a server's runner host.
func daemons(t *testing.T, serverID int64) []string {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "pids", fmt.Sprintf("%s%d", runnerhost.Prefix(), serverID)).Output()
	var pids []string
	for _, p := range strings.Fields(string(out)) {
		if comm, _ := os.ReadFile("/proc/" + p + "/comm"); strings.TrimSpace(string(comm)) == "buildkitd" {
			pids = append(pids, p)
		}
	}
	return pids
}

// filesMentioning are the files under dir whose bytes hold s.
func filesMentioning(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > 64<<20 {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// Two builds in a row run on one server; the second finds nothing of the
// first: not its cache mount, not its files on the machine, not its
// buildkitd.
func TestTwoBuildsReuseOneServer(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	marker := fmt.Sprintf("first-lease-%d", time.Now().UnixNano())
	res, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c echo "+marker+" > /c/marker && echo "+marker+" > /left\nCOPY Dockerfile /\n", nil)
	if err != nil {
		t.Fatalf("first build: %v\n%s", err, progress)
	}
	first := res.Attempts[0].Runner
	if first == nil || !strings.Contains(first.Server, "reused false") {
		t.Fatalf("first runner %+v", first)
	}
	// A cold lease's context went as one stream, through its key's forward.
	if cs := res.Attempts[0].ContextStream; cs == nil || cs.Note != "" || cs.Bytes == 0 {
		t.Errorf("context stream %+v", cs)
	}
	vms, err := w.client.List(context.Background())
	if err != nil || len(vms) != 1 || vms[0].State != pool.StateIdle || vms[0].Leases != 1 {
		t.Fatalf("after the first build: %+v %v", vms, err)
	}
	id := vms[0].ServerID
	hostDir := filepath.Join(w.hosts.Dir, fmt.Sprint(id))
	if files := filesMentioning(t, hostDir, marker); len(files) != 0 {
		t.Errorf("the first lease's files survive its return: %v", files)
	}
	before := daemons(t, id)
	if len(before) != 1 {
		t.Fatalf("buildkitds on the idle server: %v", before)
	}

	res, err, progress = w.build(t, "FROM base\nRUN --mount=type=cache,target=/c test ! -e /c/marker && test ! -e /left && echo clean\n", nil)
	if err != nil {
		t.Fatalf("second build (it fails when it sees the first one's files): %v\n%s", err, progress)
	}
	second := res.Attempts[0].Runner
	if second == nil || !strings.Contains(second.Server, "reused true") || !strings.Contains(second.Server, fmt.Sprintf("id %d", id)) {
		t.Fatalf("second runner %+v (first %+v)", second, first)
	}
	if s, _ := w.fake.Counts(); s != 1 {
		t.Errorf("%d servers, want the one reused", s)
	}
	// The return recycles the server: the lease's buildkitd is stopped and
	// a fresh one started; wait until only the fresh one is left.
	after := daemons(t, id)
	for i := 0; i < 100 && len(after) != 1; i++ {
		time.Sleep(100 * time.Millisecond)
		after = daemons(t, id)
	}
	if len(after) != 1 || after[0] == before[0] {
		t.Errorf("buildkitd before the second lease %v, after it %v: want a new one", before, after)
	}
	w.drainAndCheck(t)
}

// A lease's key lets it reach buildkitd and read the counters, and nothing
// else; after the return it lets nobody in.
func TestLeaseKeyIsRestrictedAndRevoked(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	ctx := context.Background()
	g1, err := w.client.Lease(ctx, pool.Request{Tier: "cax11"})
	if err != nil {
		t.Fatal(err)
	}
	c1 := dialLease(t, g1)
	probe := filepath.Join(t.TempDir(), "pwned")
	out, err := c1.Run(ctx, "touch "+probe+"; echo ran")
	if err != nil || strings.Contains(string(out), "ran") || !strings.Contains(string(out), "== memory") {
		t.Errorf("a command on the lease's key ran as asked, not as the forced counters: %q %v", out, err)
	}
	if _, err := os.Stat(probe); err == nil {
		t.Error("the lease's key ran a command of its choosing")
	}
	if nc, err := c1.DialUnix(ctx, g1.Socket); err == nil {
		nc.Close()
		t.Error("the lease's key forwards a socket")
	}
	if nc, err := c1.DialTCP(ctx, g1.Addr); err == nil { // the VM's own sshd listens there
		nc.Close()
		t.Error("the lease's key forwards to a port on the VM")
	}
	// What it may do: listen on the VM's loopback (its context's stream).
	if ln, err := c1.ListenLoopback(ctx); err != nil {
		t.Errorf("the lease's key cannot listen on the VM's loopback: %v", err)
	} else {
		ln.Close()
	}
	if bc, err := c1.BuildKitCommand(ctx, g1.Dial); err != nil {
		t.Errorf("the lease cannot reach buildkitd: %v", err)
	} else {
		_, err := bc.ListWorkers(ctx)
		bc.Close()
		if err != nil {
			t.Errorf("buildkitd through dial-stdio: %v", err)
		}
	}
	if _, err := w.client.Return(ctx, g1.LeaseID, "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Run(ctx, "true"); err == nil {
		t.Error("the first lease's session survived its return")
	}
	g2, err := w.client.Lease(ctx, pool.Request{Tier: "cax11"})
	if err != nil {
		t.Fatal(err)
	}
	if g2.ServerID != g1.ServerID || !g2.Reused || g2.Key == g1.Key {
		t.Fatalf("second lease %+v, first %+v", g2, g1)
	}
	if _, err := tryDial(g1); err == nil {
		t.Error("the first lease's key still gets in")
	}
	c2 := dialLease(t, g2)
	// A failed build's VM is recycled like any: its lease's key is out.
	if d, err := w.client.Return(ctx, g2.LeaseID, "error"); err != nil || !d.Kept {
		t.Fatalf("return after an error: %+v, %v (want recycled, kept)", d, err)
	}
	if _, err := c2.Run(ctx, "true"); err == nil {
		t.Error("the failed lease's session survived its return")
	}
	if _, err := tryDial(g2); err == nil {
		t.Error("the failed lease's key still gets in")
	}
	w.drainAndCheck(t)
}

func tryDial(g pool.Grant) (*sshx.Conn, error) {
	signer, err := ssh.ParsePrivateKey([]byte(g.Key))
	if err != nil {
		return nil, err
	}
	hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(g.HostKey))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return sshx.Dial(ctx, sshx.Config{Addr: g.Addr, Signer: signer, HostKey: hk})
}

func dialLease(t *testing.T, g pool.Grant) *sshx.Conn {
	t.Helper()
	c, err := tryDial(g)
	if err != nil {
		t.Fatalf("dial the lease: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// An OOM on a pooled VM destroys that VM, and the retry leases the next tier.
func TestOOMOnPooledVMDestroysItAndLeasesTheNextTier(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true, tierMemory: map[string]int64{"cax11": 192 << 20, "cax21": 1 << 30}})
	res, err, progress := w.build(t, "FROM base\nRUN head -c 400000000 /dev/zero | tail > /dev/null\n", func(r *pipeline.Request) { r.RunnerOverride = "cax11" })
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	if len(res.Attempts) != 2 || !res.Attempts[0].OOM || res.Attempts[1].Tier != "cax21" {
		t.Fatalf("attempts %+v", res.Attempts)
	}
	vms, err := w.client.List(context.Background())
	if err != nil || len(vms) != 1 || vms[0].Tier != "cax21" {
		t.Fatalf("VMs after the OOM retry: %+v %v (want only the cax21, kept idle)", vms, err)
	}
	w.drainAndCheck(t)
}

// What a lease can leave on a machine when its buildkitd dies mid-build —
// a mount under buildkitd's root, a process in the build cgroup that
// escaped its container's kill, an SSH session — is gone after the
// return's recycle.
func TestRecycleRemovesWhatALeaseLeft(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	ctx := context.Background()
	g, err := w.client.Lease(ctx, pool.Request{Tier: "cax11"})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(w.hosts.HostDir(g.ServerID), "buildkit")
	marker := fmt.Sprintf("left-by-%s", g.LeaseID)
	setup := fmt.Sprintf(`set -e
mkdir -p %[1]s/leftover && mount -t tmpfs tmpfs %[1]s/leftover && echo %[2]s > %[1]s/leftover/file
. /run/lian-build/runner.env; cg=/sys/fs/cgroup/memory/$B/steps/escaped
mkdir -p $cg && sh -c "echo \$\$ > $cg/cgroup.procs; exec sleep 1000 %[2]s" >/dev/null 2>&1 &
sleep 0.2; grep -q leftover /proc/self/mountinfo && pgrep -f %[2]s >/dev/null`, root, marker)
	if out, err := w.hosts.Run(g.ServerID, setup); err != nil {
		t.Fatalf("leaving things behind: %v\n%s", err, out)
	}
	session := dialLease(t, g)
	if d, err := w.client.Return(ctx, g.LeaseID, "ok"); err != nil || !d.Kept {
		t.Fatalf("return: %+v %v (the machine should be recycled and kept)", d, err)
	}
	out, err := w.hosts.Run(g.ServerID, fmt.Sprintf(`grep leftover /proc/self/mountinfo; pgrep -af "[s]leep 1000 %[1]s"; ls -A %[2]s; . /run/lian-build/runner.env; ls /sys/fs/cgroup/memory/$B`, marker, root))
	got := string(out)
	if err != nil && !strings.Contains(got, "daemon") {
		t.Fatalf("looking at the recycled machine: %v\n%s", err, got)
	}
	if strings.Contains(got, "leftover") || strings.Contains(got, marker) || strings.Contains(got, "escaped") {
		t.Errorf("after the recycle the machine still holds what the lease left:\n%s", got)
	}
	if !strings.Contains(got, "daemon") {
		t.Errorf("no new daemon cgroup:\n%s", got)
	}
	if _, err := session.Run(ctx, "true"); err == nil {
		t.Error("the lease's SSH session survived the recycle")
	}
	w.drainAndCheck(t)
}
