package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/events"
	"github.com/lian-build/action/internal/metrics"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Runtime is a ready pipeline and what to close after the build.
type Runtime struct {
	Pipeline *pipeline.Pipeline
	Provider *local.Provider
	Recorder metrics.Recorder
	closers  []func()
}

// Close releases the runtime's connections.
func (r *Runtime) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// OpenProvider returns the compute provider the settings name.
func (s Settings) OpenProvider() (*local.Provider, error) {
	switch s.ComputeProvider {
	case "", "local":
	default:
		return nil, &buildkit.InputError{Field: s.name("compute-provider"), Value: s.ComputeProvider, Msg: "only local is available in this build (hcloud, proxmox, vm_pool and docker_local are not implemented yet)"}
	}
	mem, err := local.ParseTierMemory(s.Local.TierMemory, Table())
	if err != nil {
		return nil, &buildkit.InputError{Field: s.name("local-tier-memory"), Msg: err.Error()}
	}
	bk := s.Local.Buildkitd
	if bk == "" {
		bk = DefaultBuildkitd()
	}
	if dir := s.Local.StateDir; dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, &buildkit.InputError{Field: s.name("state-dir"), Value: dir, Msg: fmt.Sprintf("cannot create it: %v", errors.Unwrap(err))}
		}
	}
	return local.New(local.Options{Buildkitd: bk, StateDir: s.Local.StateDir, TierMemory: mem, InsecureRegistries: s.Insecure, Table: Table()})
}

// OpenHistory returns the P95 history: JetStream when a NATS URL is set, files otherwise.
func (s Settings) OpenHistory(ctx context.Context) (metrics.Recorder, func(), error) {
	if s.NatsURL == "" {
		dir := s.MetricsDir
		if dir == "" {
			dir = metrics.DefaultDir
		}
		return metrics.Recorder{Store: metrics.FileStore{Dir: dir}}, func() {}, nil
	}
	nc, err := nats.Connect(s.NatsURL, nats.Timeout(2*time.Second), nats.Name("lian-build metrics"), nats.MaxReconnects(0))
	if err != nil {
		return metrics.Recorder{}, nil, fmt.Errorf("nats-url: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return metrics.Recorder{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := metrics.OpenKV(ctx, js)
	if err != nil {
		nc.Close()
		return metrics.Recorder{}, nil, err
	}
	return metrics.Recorder{Store: kv}, nc.Close, nil
}

// Open builds the pipeline the settings describe.
func (s Settings) Open(ctx context.Context, log *slog.Logger) (*Runtime, error) {
	prov, err := s.OpenProvider()
	if err != nil {
		return nil, err
	}
	if log != nil && log.Enabled(ctx, slog.LevelInfo) {
		if note := prov.FilesystemNote(); note != "" {
			log.Info(note)
		}
	}
	rec, closeHistory, err := s.OpenHistory(ctx)
	if err != nil {
		return nil, err
	}
	rt := &Runtime{Provider: prov, Recorder: rec, closers: []func(){closeHistory}}
	cfg := pipeline.Config{Provider: prov, Logger: log, Specs: SpecLoader(), Metrics: rec, History: rec}
	if s.NatsURL != "" {
		pub := events.New(events.Options{URL: s.NatsURL, Prefix: s.EventsPrefix, Logger: log})
		rt.closers = append(rt.closers, pub.Close)
		cfg.Events = pub
	}
	if rt.Pipeline, err = pipeline.New(cfg); err != nil {
		rt.Close()
		return nil, err
	}
	return rt, nil
}

// DefaultBuildkitd is buildkitd on PATH, else the one installed next to the running binary.
func DefaultBuildkitd() string {
	if _, err := exec.LookPath("buildkitd"); err == nil {
		return "buildkitd"
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "buildkitd"); fileExists(p) {
			return p
		}
	}
	return "buildkitd"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// BuildOptions are what a front door adds around the build sequence.
type BuildOptions struct {
	Logger *slog.Logger
	// Progress receives BuildKit's progress display (plain unless it is a TTY);
	// nil discards it.
	Progress io.Writer
	// Starting runs once the runtime is open, just before the pipeline: the
	// place for a front door's banner, log group or saved state.
	Starting func()
}

// Build is the sequence every front door shares: open the runtime the settings
// describe, run req through the pipeline, close the runtime. The result is
// filled as far as the build got, also when err is set; its BuildID is empty
// when the runtime could not open and nothing ran.
func (s Settings) Build(ctx context.Context, req pipeline.Request, o BuildOptions) (pipeline.Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt, err := s.Open(ctx, log)
	if err != nil {
		return pipeline.Result{}, err
	}
	defer rt.Close()
	req.Build.ProgressOut = o.Progress
	if req.Build.ProgressOut == nil {
		req.Build.ProgressOut = io.Discard
	}
	if o.Starting != nil {
		o.Starting()
	}
	return rt.Pipeline.Run(ctx, req)
}
