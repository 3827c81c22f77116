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
