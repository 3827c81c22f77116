package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/moby/buildkit/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/compute"
)

// dyingRunner looks alive for a few health checks, then reports its death.
type dyingRunner struct{ checks, aliveFor int }

func (r *dyingRunner) Info() compute.RunnerInfo                       { return compute.RunnerInfo{} }
func (r *dyingRunner) Client(context.Context) (*client.Client, error) { return nil, errors.New("no") }
func (r *dyingRunner) Stats(context.Context) (compute.Stats, error)   { return compute.Stats{}, nil }
func (r *dyingRunner) Destroy(context.Context) error                  { return nil }
func (r *dyingRunner) Health(context.Context) error {
	r.checks++
	if r.checks > r.aliveFor {
		return errors.New("buildkitd was killed for memory (OOMKilled)")
	}
	return nil
}

// A dropped connection waits for the runner to show what happened to it;
// any other build error takes the first answer.
func TestSettledHealth(t *testing.T) {
	dropped := status.Error(codes.Unavailable, "error reading from server: EOF")
	r := &dyingRunner{aliveFor: 3}
	if err := settledHealth(context.Background(), r, dropped); err == nil || r.checks != 4 {
		t.Fatalf("dropped connection: %v after %d checks, want the OOM after 4", err, r.checks)
	}
	r = &dyingRunner{aliveFor: 3}
	if err := settledHealth(context.Background(), r, errors.New("exit code: 1")); err != nil || r.checks != 1 {
		t.Fatalf("a failed step: %v after %d checks, want healthy after 1", err, r.checks)
	}
	r = &dyingRunner{aliveFor: 1000}
	if err := settledHealth(context.Background(), r, dropped); err != nil || r.checks != 21 {
		t.Fatalf("a runner that stays healthy: %v after %d checks, want nil after 21", err, r.checks)
	}
}

// oomLateRunner is a container runner whose engine notes the kernel's OOM
// kill a moment after the daemon's connection dropped: its stats count the
// kill only once its health has seen it (docker's OOMKilled).
type oomLateRunner struct {
	dyingRunner
	seen bool
}

func (r *oomLateRunner) Health(ctx context.Context) error {
	err := r.dyingRunner.Health(ctx)
	r.seen = r.seen || err != nil
	return err
}

func (r *oomLateRunner) Stats(context.Context) (compute.Stats, error) {
	if r.seen {
		return compute.Stats{OOMKills: 1}, nil
	}
	return compute.Stats{}, nil
}

// A daemon the kernel killed for memory is an OOM even when its engine
// reports the kill after the build's connection dropped (CI saw
// TestKernelKillingBuildkitdIsAnOOM fail so: the stats were read first).
func TestLateOOMKillIsAnOOM(t *testing.T) {
	r := &oomLateRunner{dyingRunner: dyingRunner{aliveFor: 2}}
	out := attemptOutcome{err: status.Error(codes.Unavailable, "error reading from server: EOF")}
	out.diagnose(context.Background(), r, compute.Stats{}, nil)
	if !out.oom {
		t.Fatalf("not taken for an OOM: %v", out.err)
	}
}

// flakyStatsRunner's daemon was killed for memory; its counters say so,
// but only the reading after `fails` failed ones answers.
type flakyStatsRunner struct {
	dyingRunner
	fails, reads int
}

func (r *flakyStatsRunner) Stats(context.Context) (compute.Stats, error) {
	r.reads++
	if r.reads <= r.fails {
		return compute.Stats{}, errors.New("ssh: context deadline exceeded")
	}
	return compute.Stats{OOMKills: 1}, nil
}

// The counters that tell an OOM are read again when a reading fails (a
// TCG guest, slowed by the OOM, missed the first one in CI), or taken from
// the attempt's samples; with neither, it is not taken for an OOM.
func TestOOMToldDespiteFailedReadings(t *testing.T) {
	dropped := status.Error(codes.Unavailable, "error reading from server: EOF")
	for _, c := range []struct {
		name    string
		fails   int
		samples []compute.Stats
		want    bool
	}{
		{"a reading fails once", 1, nil, true},
		{"a reading fails twice", 2, nil, true},
		{"every reading fails", 1000, nil, false},
		{"every reading fails, a sample saw the kill", 1000, []compute.Stats{{}, {OOMKills: 1}}, true},
		{"every reading fails, no sample saw it", 1000, []compute.Stats{{}, {}}, false},
	} {
		r := &flakyStatsRunner{dyingRunner: dyingRunner{aliveFor: 1000}, fails: c.fails}
		out := attemptOutcome{err: dropped, samples: c.samples}
		out.diagnose(context.Background(), r, compute.Stats{}, nil)
		if out.oom != c.want {
			t.Errorf("%s: oom %v after %d readings, want %v", c.name, out.oom, r.reads, c.want)
		}
	}
	// The reading before the build failed: the first sample stands for it.
	r := &flakyStatsRunner{dyingRunner: dyingRunner{aliveFor: 1000}, fails: 1000}
	out := attemptOutcome{err: dropped, samples: []compute.Stats{{OOMKills: 2}, {OOMKills: 3}}}
	out.diagnose(context.Background(), r, compute.Stats{}, errors.New("timeout"))
	if !out.oom {
		t.Error("a kill between the first and the last sample was not taken for an OOM")
	}
	out = attemptOutcome{err: dropped, samples: []compute.Stats{{OOMKills: 2}}}
	out.diagnose(context.Background(), r, compute.Stats{}, errors.New("timeout"))
	if out.oom {
		t.Error("kills from before the build were taken for an OOM")
	}
}

// namedProvider is a provider Abandon asks only its name.
type namedProvider struct{ compute.Provider }

func (namedProvider) Name() string { return "stub" }

// recordedEvents keeps what a pipeline publishes.
type recordedEvents struct{ events []Event }

func (r *recordedEvents) Publish(_ context.Context, e Event) { r.events = append(r.events, e) }

// A build that ends before its pipeline runs (its source not fetched, or
// superseded while queued: the 60-minute soak saw builds with no events, and
// one whose interrupted run's build.started was never ended) is seen to
// start and fail; one interrupted to run again publishes nothing.
func TestAbandonEndsTheLifecycle(t *testing.T) {
	req := Request{BuildID: "b1", Workspace: "app", Actor: cache.Actor{Kind: cache.ActorCI}, Commit: "abc"}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	interrupted, interrupt := context.WithCancelCause(context.Background())
	interrupt(ErrInterrupted)
	for _, c := range []struct {
		name    string
		ctx     context.Context
		outcome Outcome
		events  int
	}{
		{"fetch failed", context.Background(), OutcomeError, 2},
		{"superseded", cancelled, OutcomeCanceled, 2},
		{"interrupted", interrupted, OutcomeCanceled, 0},
	} {
		rec := &recordedEvents{}
		p, err := New(Config{Provider: namedProvider{}, Events: rec})
		if err != nil {
			t.Fatal(err)
		}
		res := p.Abandon(c.ctx, req, errors.New("git fetch: exit status 128"))
		if res.Outcome != c.outcome || res.Error != "git fetch: exit status 128" || res.BuildID != "b1" {
			t.Errorf("%s: result %+v", c.name, res)
		}
		if len(rec.events) != c.events {
			t.Fatalf("%s: %d events, want %d", c.name, len(rec.events), c.events)
		}
		if c.events == 2 && (rec.events[0].Name != EventStarted || rec.events[1].Name != EventFailed ||
			rec.events[1].Result == nil || rec.events[1].Result.Outcome != c.outcome || rec.events[1].Workspace != "app") {
			t.Errorf("%s: events %+v", c.name, rec.events)
		}
	}
}
