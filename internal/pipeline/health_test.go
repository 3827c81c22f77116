package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/moby/buildkit/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
