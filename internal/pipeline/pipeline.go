package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/state"
)

// Config wires the pipeline to its collaborators.
type Config struct {
	Provider compute.Provider // required
	Events   Publisher        // default: no events
	Metrics  MetricsRecorder  // default: not recorded
	History  sizing.History   // default: no P95 rule
	Specs    SpecSource       // default: .build-spec.ncl is not read
	Logger   *slog.Logger     // default: slog.Default()
	// SampleEvery is the runner sampling interval (default 500ms).
	SampleEvery time.Duration
	// DestroyTimeout bounds a runner's teardown (default 60s).
	DestroyTimeout time.Duration
	// SpawnTimeout bounds a runner's spawn, separately from the build's
	// time budget (default 10 min: a cloud server takes minutes at worst).
	SpawnTimeout time.Duration
	// State keeps committed BuildKit state per cache namespace: each
	// attempt's runner starts on a clone of it (nil: a fresh, empty state).
	State *state.Store
	// StateKeepBytes is the size a state is pruned to before it is
	// committed (0: not pruned).
	StateKeepBytes int64
	// RemoteState asks the provider to keep the runner state (a Hetzner
	// Volume per namespace): the same namespaces as State, on its side.
	RemoteState bool
}

// Pipeline runs builds.
type Pipeline struct{ cfg Config }

// New checks cfg and fills defaults.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Provider == nil {
		return nil, errors.New("pipeline: no compute provider")
	}
	if cfg.Events == nil {
		cfg.Events = NopPublisher{}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SpawnTimeout <= 0 {
		cfg.SpawnTimeout = 10 * time.Minute
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = 500 * time.Millisecond
	}
	if cfg.DestroyTimeout <= 0 {
		cfg.DestroyTimeout = 60 * time.Second
	}
	return &Pipeline{cfg: cfg}, nil
}

// SpecSource reads the .build-spec.ncl of a build context; nil, nil when there is none.
type SpecSource interface {
	Load(ctx context.Context, contextDir string) (*sizing.Spec, error)
}
