package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/compute"
)

func TestShouldRetryOnOOM(t *testing.T) {
	tests := []struct {
		oom     bool
		done    int
		hasNext bool
		want    bool
	}{
		{true, 0, true, true},
		{true, 1, true, false}, // MAX_OOM_RETRIES = 1
		{true, 0, false, false},
		{false, 0, true, false},
	}
	for _, tt := range tests {
		if got := shouldRetryOnOOM(tt.oom, tt.done, tt.hasNext); got != tt.want {
			t.Errorf("shouldRetryOnOOM(%v, %d, %v) = %v", tt.oom, tt.done, tt.hasNext, got)
		}
	}
}

func TestUsageOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var samples []compute.Stats
	for i := 0; i < 20; i++ {
		samples = append(samples, compute.Stats{
			Time:          t0.Add(time.Duration(i) * time.Second),
			MemoryBytes:   uint64(i+1) * 10 << 20,     // 10 … 200 MiB
			CPUUsageNanos: uint64(i) * 1_500_000_000,  // 1.5 cores throughout
			MemoryPeak:    uint64(i+1)*10<<20 + 5<<20, // peak a bit above the samples
		})
	}
	u := usageOf(samples)
	if u.Samples != 20 || u.MemP95Bytes != 190<<20 || u.CPUP95 != 1.5 || u.MemPeak != 205<<20 {
		t.Errorf("usage = %+v", u)
	}
	if u := usageOf(nil); u.Samples != 0 || u.MemP95Bytes != 0 {
		t.Errorf("empty usage = %+v", u)
	}
}

func TestP95NearestRank(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	if got := p95(v); got != 5 {
		t.Errorf("p95 = %v", got)
	}
	if v[0] != 5 {
		t.Error("p95 sorted its input in place")
	}
}

func TestOOMErrorGuidance(t *testing.T) {
	err := &OOMError{Tiers: []string{"cax11", "cax21"}}
	want := "the build ran out of memory on cax11 and cax21 (one retry on the next tier is the limit); set runner_type in .build-spec.ncl to a larger tier"
	if got := err.Error(); len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("message %q", got)
	}
}

// The pipeline, the cache plan and the metrics history use one rule for
// workspace names (they used to disagree on app_, a__b and 101–128 chars).
func TestWorkspaceRuleIsTheCacheRule(t *testing.T) {
	long := strings.Repeat("a", 101)
	for ws, want := range map[string]string{"lian-build": "", "a.b_c-1": "", "Upper": "registry path rules", "a/b": "registry path rules",
		"..": "registry path rules", "-x": "registry path rules", "app_": "registry path rules", "a__b": "registry path rules",
		long: "longer than 100", strings.Repeat("a", 100): "", "appé": "registry path rules"} {
		err := Request{Workspace: ws, Build: buildkit.Options{ContextDir: t.TempDir()}}.Validate()
		var ie *buildkit.InputError
		if want == "" {
			if errors.As(err, &ie) && ie.Field == "workspace" {
				t.Errorf("workspace %q refused: %v", ws, err)
			}
			continue
		}
		if !errors.As(err, &ie) || ie.Field != "workspace" || !strings.Contains(ie.Msg, want) {
			t.Errorf("workspace %q: %v, want %q", ws, err, want)
		}
		if (cache.ValidName("workspace", ws) == nil) != (want == "") {
			t.Errorf("cache.ValidName disagrees on %q", ws)
		}
	}
}
