package local_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
)

// A local runner's buildkitd runs under the filter: in filter mode, with
// nothing in its log saying it keeps its fsyncs.
func TestRunnerDaemonSkipsSyncs(t *testing.T) {
	testenv.Require(t)
	ctx := context.Background()
	r, err := testenv.NewProvider(t, nil).Spawn(ctx, sizing.HCloud[0], compute.Lease{ID: fmt.Sprintf("nosync-%d", time.Now().UnixNano()%100000), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Destroy(context.WithoutCancel(ctx)) })
	if got := testenv.SeccompMode(fmt.Sprintf("/proc/%d/status", local.DaemonPID(r))); got != "2" {
		t.Errorf("buildkitd's seccomp mode = %q, want 2 (filter)", got)
	}
}
