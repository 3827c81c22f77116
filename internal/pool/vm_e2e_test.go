package pool_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/pool"
)

// Two leases in a row on one pool VM that is a real VM (cgroup v2, the
// real cloud-init): the pool's first recycle waits for cloud-init, the
// second lease runs on the same server, and its peak memory is its own —
// cgroup v2 keeps memory.peak for a cgroup's life, so the recycle makes
// the build cgroup anew. Both are warm leases of ci/app: the VM's root is
// ext4, so its warm state is on the XFS image the first commit made
// (reflink copies), and the second lease opens the first one's generation.
func TestPoolLeasesOnAVMHaveTheirOwnPeak(t *testing.T) {
	const mib = 1 << 20
	w := newWorld(t, worldConfig{vms: map[string]int{"cpx21": 1536}, warm: true})
	res, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c dd if=/dev/zero of=/dev/null bs=400M count=1 && echo ci > /c/mark\n", inWorkspace("app", ci))
	if err != nil {
		t.Fatalf("first build: %v\n%s", err, progress)
	}
	first := res.Attempts[0].Runner
	if first == nil || first.CgroupVersion != 2 || res.Usage == nil || res.Usage.MemPeak < 400*mib {
		t.Fatalf("first lease: runner %+v, usage %+v", first, res.Usage)
	}
	firstPeak := res.Usage.MemPeak
	res, err, progress = w.build(t, "FROM base\nRUN --mount=type=cache,target=/c test \"$(cat /c/mark)\" = ci\n", inWorkspace("app", ci))
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, progress)
	}
	second := res.Attempts[0].Runner
	if second == nil || !strings.Contains(second.Server, "reused true") || second.Kernel != first.Kernel {
		t.Fatalf("second runner %+v (first %+v)", second, first)
	}
	if res.Usage == nil || res.Usage.MemPeak >= 300*mib {
		t.Errorf("the second lease's peak is %+v: the first lease's 400 MiB is counted in it", res.Usage)
	}
	if st := res.State; st == nil || st.GenerationIn != 1 || st.GenerationOut != 2 {
		t.Errorf("second lease's state %+v: want generation 1 opened, 2 committed", res.State)
	}
	t.Logf("peaks: first lease %d MiB, second %d MiB", firstPeak/mib, res.Usage.MemPeak/mib)
	vms, err := w.client.List(context.Background())
	if err != nil || len(vms) != 1 || vms[0].Leases != 2 || vms[0].State != pool.StateIdle {
		t.Fatalf("VMs %+v %v", vms, err)
	}
	const warm = "/var/lib/lian-build/warm"
	out, err := w.vms.Run(context.Background(), vms[0].ServerID, "stat -f -c %T / "+warm+"; xfs_info "+warm+" | grep -o 'reflink=[01]'; ls "+warm+"/ns/ci_app/gens; grep ^Seccomp: /proc/$(pidof buildkitd)/status")
	if got := strings.Fields(string(out)); err != nil || strings.Join(got, " ") != "ext2/ext3 xfs reflink=1 2 Seccomp: 2" {
		t.Errorf("the VM's root, warm state and buildkitd: %q %v, want ext4 (ext2/ext3), xfs with reflink=1, generation 2, buildkitd under a seccomp filter (its syncs no-ops)", out, err)
	}
	w.drainAndCheck(t)
}
