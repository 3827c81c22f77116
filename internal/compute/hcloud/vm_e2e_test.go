package hcloud_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/report"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/vmhost"
)

// vmWorld is the fake Hetzner API whose servers are real VMs booting the
// real cloud-init, which downloads buildkitd and runc from this machine
// (pinned), and a pipeline on x86 (cpx) servers.
type vmWorld struct {
	hosts *vmhost.Hosts
	fake  *fakehcloud.Fake
	pl    *pipeline.Pipeline
}

func newVMWorld(t *testing.T, memMiB map[string]int, edit func(*hcloud.Settings)) *vmWorld {
	dl := testenv.RunnerDownloads(t)
	w := &vmWorld{hosts: testenv.VMHosts(t, dl.Port)}
	w.hosts.MemoryMiB = memMiB
	w.fake = fakehcloud.New(token, w.hosts)
	t.Cleanup(w.fake.Close)
	s := dl.HCloud(hcloud.Settings{Token: token, Endpoint: w.fake.Endpoint(), PollEvery: time.Second})
	if edit != nil {
		edit(&s)
	}
	p, err := hcloud.New(s)
	if err != nil {
		t.Fatal(err)
	}
	// A TCG guest on a loaded 2-core machine has booted in 93 s and has sat
	// in soft lockups past 280 s (CI, 2026-12-07): 10 minutes to answer.
	if w.pl, err = pipeline.New(pipeline.Config{Provider: p, SpawnTimeout: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *vmWorld) assertNothingLeft(t *testing.T) {
	t.Helper()
	if s, k := w.fake.Counts(); s != 0 || k != 0 {
		t.Errorf("left %d servers and %d keys", s, k)
	}
	if ids := w.hosts.IDs(); len(ids) != 0 {
		t.Errorf("VMs left: %v", ids)
	}
	if left := vmhost.Leftovers(); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}

// A step that runs out of memory on a cax11-tier VM is killed in the build
// cgroup, counted in cgroup v2's memory.events read over SSH, and retried
// on the next tier's new VM — a build on a server that is a real VM:
// cloud-init runs the provider's user-data (no apt: buildkitd and runc come
// from pinned downloads), the build runs on the guest's own kernel under
// cgroup v2, the report names both, and the servers and their VMs are gone
// afterwards.
func TestVMStepOOMRetriesOnANewVM(t *testing.T) {
	w := newVMWorld(t, map[string]int{"cpx21": 768, "cpx31": 1536}, nil)
	res, err, progress := testenv.BuildDockerfile(t, w.pl, "FROM base\nRUN dd if=/dev/zero of=/dev/null bs=500M count=1 && echo allocated\nCOPY Dockerfile /\n", nil)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	if len(res.Attempts) != 2 || !res.Attempts[0].OOM || res.Attempts[1].Outcome != pipeline.OutcomeSuccess || res.OOMRetries != 1 {
		t.Fatalf("attempts %+v", res.Attempts)
	}
	a, b := res.Attempts[0].Runner, res.Attempts[1].Runner
	if a.Type != "cpx21" || b.Type != "cpx31" || a.Server == b.Server || a.CgroupVersion != 2 || b.CgroupVersion != 2 || !strings.Contains(b.Kernel, "cloud-amd64") {
		t.Fatalf("runners %+v / %+v", a, b)
	}
	// The context went as one stream, through the VM's own sshd's remote
	// forward to its loopback.
	if cs := res.Attempts[1].ContextStream; cs == nil || cs.Bytes == 0 || cs.Note != "" {
		t.Errorf("context stream %+v", cs)
	}
	t.Logf("spawn %d ms (create %d, boot %d, ready %d) on Linux %s", res.Attempts[1].SpawnMS, b.Spawn.CreateMS, b.Spawn.BootMS, b.Spawn.ReadyMS, b.Kernel)
	if line := report.Markdown(res); !strings.Contains(line, "cgroup v2") || !strings.Contains(line, b.Kernel) {
		t.Errorf("the report does not name the runner's kernel and cgroup version:\n%s", line)
	}
	if b.Spawn.BootMS < 5000 {
		t.Errorf("boot took %d ms: not a real boot", b.Spawn.BootMS)
	}
	w.assertNothingLeft(t)
}

// User-data that fails — a download that does not match its pin — fails
// the spawn as soon as cloud-init reports it, quoting the end of its
// output, and the server is deleted.
func TestVMUserDataThatFails(t *testing.T) {
	w := newVMWorld(t, map[string]int{"cpx21": 1024}, func(s *hcloud.Settings) {
		s.BuildkitPins = map[string]string{"amd64": strings.Repeat("0", 64)}
	})
	start := time.Now()
	res, err, _ := testenv.BuildDockerfile(t, w.pl, "FROM base\nRUN true\n", nil)
	var boot *remote.BootError
	if !errors.As(err, &boot) {
		t.Fatalf("want a cloud-init failure, got %v (%+v)", err, res.Attempts)
	}
	t.Logf("after %v: %v", time.Since(start).Round(time.Second), err)
	if !strings.Contains(boot.Output, "sha256sum") && !strings.Contains(boot.Output, "FAILED") {
		t.Errorf("the error does not quote the failed check:\n%s", boot.Output)
	}
	w.assertNothingLeft(t)
}

// duringStep runs script in each VM once a RUN step runs there (a process
// in a container's cgroup under the build cgroup's steps), with $STEP the
// pids of the steps' processes; it stops with the test.
func (w *vmWorld) duringStep(t *testing.T, script string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		ran := map[int64]bool{}
		for ctx.Err() == nil {
			for _, id := range w.hosts.IDs() {
				if !ran[id] {
					ran[id] = w.runDuringStep(ctx, t, id, script)
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

// stepProcs prints the pids of the processes in the steps' containers.
const stepProcs = `find /sys/fs/cgroup/lian-build/steps -mindepth 2 -name cgroup.procs -exec cat {} +`

// runDuringStep runs script in VM id if a step runs there, and says whether it did.
func (w *vmWorld) runDuringStep(ctx context.Context, t *testing.T, id int64, script string) bool {
	if _, err := w.hosts.Run(ctx, id, stepProcs+" | grep -q ."); err != nil {
		return false
	}
	// The script may end the build, and the server with it, before the
	// agent reports: only a VM still there failed it.
	if out, err := w.hosts.Run(ctx, id, "STEP=$("+stepProcs+")\n"+script); err != nil && ctx.Err() == nil && slices.Contains(w.hosts.IDs(), id) {
		t.Errorf("in the VM: %v: %s", err, out)
	}
	return true
}

// The kernel's OOM killer takes buildkitd itself: the step needs just less
// than the build cgroup's limit (464 MiB on a 768 MiB VM), which it only
// exceeds with the daemon beside it; buildkitd, made the first choice once
// the step runs, is killed and the step finishes alone. The build's error
// is a lost daemon, but cgroup v2's memory.events, read over SSH, make it an
// OOM, and the retry runs on the next tier's new VM.
func TestVMKernelKillingBuildkitdIsAnOOM(t *testing.T) {
	w := newVMWorld(t, map[string]int{"cpx21": 768, "cpx31": 1536}, nil)
	// The step waits for the daemon's score to be set (the script touches
	// /go in its root once the step made /ready), up to five minutes: a
	// TCG guest on a loaded machine can take more than one.
	w.duringStep(t, `echo 1000 > /proc/$(pidof buildkitd)/oom_score_adj
for i in $(seq 1500); do
	for p in $STEP; do [ -e /proc/$p/root/ready ] && touch /proc/$p/root/go && exit 0; done
	sleep 0.2
	STEP=$(`+stepProcs+`)
done
echo "the step never made /ready; steps: $STEP"; exit 1`)
	res, err, progress := testenv.BuildDockerfile(t, w.pl, "FROM base\nRUN touch /ready && i=0 && until [ -e /go ] || [ $((i+=1)) -gt 1500 ]; do sleep 0.2; done && [ -e /go ] && dd if=/dev/zero of=/dev/null bs=452M count=1 && echo allocated\n", nil)
	assertDaemonOOMRetried(t, res, err, progress)
	w.assertNothingLeft(t)
}

// The SSH connection cut mid-build from the VM's side (its sessions
// killed): the build fails saying the runner is gone, not an OOM, and the
// server and its VM are removed.
func TestVMConnectionCutMidBuild(t *testing.T) {
	w := newVMWorld(t, map[string]int{"cpx21": 1024}, nil)
	w.duringStep(t, `for p in $(pgrep -f "^sshd: root"); do kill -9 $p; done`)
	res, err, progress := testenv.BuildDockerfile(t, w.pl, "FROM base\nRUN sleep 60\n", nil)
	if err == nil {
		t.Fatalf("the build survived a cut connection:\n%s", progress)
	}
	if res.Attempts[0].OOM || !strings.Contains(err.Error(), "the runner is gone: ssh ") {
		t.Fatalf("the error does not say the runner is gone: %v", err)
	}
	w.assertNothingLeft(t)
}
