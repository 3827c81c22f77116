// Package launch turns a front door's settings into a running pipeline:
// it opens the compute provider, the P95 history, the state store and the
// events the settings describe, runs builds, and closes them. Every door
// (the CLI, the Action, the Woodpecker plugin, the gateway) builds through
// it, so none repeats the sequence.
package launch

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/events"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/metrics"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sbom"
	"github.com/lian-build/action/internal/sign"
)

// Runtime is a ready pipeline and what to close after the build.
type Runtime struct {
	Pipeline *pipeline.Pipeline
	Provider compute.Provider
	Recorder metrics.Recorder
	// Events publishes lifecycle events (a no-op without NATS).
	Events  pipeline.Publisher
	closers []func()
}

// Close releases the runtime's connections.
func (r *Runtime) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// Open opens what the settings describe — the provider, the P95 history,
// the state store, the events — and the pipeline over them; a nil log
// discards what they say.
func Open(ctx context.Context, s frontdoor.Settings, log *slog.Logger) (*Runtime, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prov, err := s.OpenProvider()
	if err != nil {
		return nil, err
	}
	// A provider's note (a slow state directory, a stock image without a
	// pinned download) is said before the build, where it can still help.
	if note := prov.Note(); note != "" {
		log.Warn(note)
	}
	rec, closeHistory, err := s.OpenHistory(ctx)
	if err != nil {
		return nil, err
	}
	rt := &Runtime{Provider: prov, Recorder: rec, closers: []func(){closeHistory}}
	cfg := pipeline.Config{Provider: prov, Logger: log, Specs: frontdoor.SpecLoader(), Metrics: rec, History: rec}
	if cfg.State, cfg.StateKeepBytes, err = s.OpenState(ctx); err != nil {
		rt.Close()
		return nil, err
	}
	if cfg.State != nil {
		log.Info("runner state store", "store", cfg.State.Describe())
		if note := cfg.State.MountNote(); note != "" {
			log.Warn(note)
		}
	}
	cfg.RemoteState = s.RemoteState()
	if s.NatsURL != "" {
		pub := events.New(events.Options{URL: s.NatsURL, Prefix: s.EventsPrefix, Logger: log})
		rt.closers = append(rt.closers, pub.Close)
		cfg.Events = pub
	}
	rt.Events = cfg.Events
	if rt.Events == nil {
		rt.Events = pipeline.NopPublisher{}
	}
	if rt.Pipeline, err = pipeline.New(cfg); err != nil {
		rt.Close()
		return nil, err
	}
	return rt, nil
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
func Build(ctx context.Context, s frontdoor.Settings, req pipeline.Request, o BuildOptions) (pipeline.Result, error) {
	return build(ctx, s, req, o, nil)
}

// Build runs one build on a runtime opened once for many (the gateway's):
// the same sequence as Build after the runtime is open. A build split by
// architecture opens a runtime per leg.
func (r *Runtime) Build(ctx context.Context, s frontdoor.Settings, req pipeline.Request, o BuildOptions) (pipeline.Result, error) {
	return build(ctx, s, req, o, r)
}

// build pins the lamina layers, splits the platforms, runs the build on
// rt (nil: a runtime opened for it) or, split by architecture, on one
// runtime per leg, and signs what it pushed.
func build(ctx context.Context, s frontdoor.Settings, req pipeline.Request, o BuildOptions, rt *Runtime) (pipeline.Result, error) {
	if err := s.PinLamina(ctx, &req); err != nil {
		return pipeline.Result{}, err
	}
	legs, err := split(s, req)
	if err != nil {
		return pipeline.Result{}, err
	}
	key, err := s.SigningKey()
	if err != nil {
		return pipeline.Result{}, err
	}
	var res pipeline.Result
	if len(legs) > 1 {
		res, err = buildLegs(ctx, s, req, legs, o)
	} else {
		res, err = buildOne(ctx, s, req, o, rt)
		res.Emulated = legs[0].Emulated
	}
	if err == nil && key != nil {
		err = signResult(ctx, key, req, &res)
	}
	if err == nil {
		attested(ctx, s, req, &res, rt, o.Logger)
	}
	return res, s.Renamed(err)
}

// buildOne runs the build on one runner.
func buildOne(ctx context.Context, s frontdoor.Settings, req pipeline.Request, o BuildOptions, rt *Runtime) (pipeline.Result, error) {
	if rt == nil {
		var err error
		if rt, err = Open(ctx, s, o.Logger); err != nil {
			return pipeline.Result{}, err
		}
		defer rt.Close()
	}
	return rt.run(ctx, req, o)
}

// signResult signs the pushed image in every repository of the tags: its
// digest and, for an index, each manifest it holds.
func signResult(ctx context.Context, key *sign.Key, req pipeline.Request, res *pipeline.Result) error {
	if res.Digest == "" {
		return nil
	}
	reg := sign.Registry{Registry: registryOf(req)}
	for _, repo := range repositories(req.Build.Tags) {
		refs, err := reg.Targets(ctx, repo+"@"+res.Digest)
		if err != nil {
			return err
		}
		signed, err := key.Sign(ctx, reg, refs)
		for _, sg := range signed {
			res.Signed, res.Signatures = append(res.Signed, sg.Subject), append(res.Signatures, sg.Manifest)
		}
		if err != nil {
			return err
		}
	}
	res.SignedBy = key.Fingerprint
	return nil
}

// attested reads back what the pushed image had attested (provenance, the
// SBOM and its package count) and publishes build.attested with it and the
// signatures. The image is pushed by then: a registry that cannot be read
// back costs the report its attestations, not the build.
func attested(ctx context.Context, s frontdoor.Settings, req pipeline.Request, res *pipeline.Result, rt *Runtime, log *slog.Logger) {
	if res.Digest == "" || (res.Provenance == "" && req.Build.SBOM.Generator == "" && len(res.Signed) == 0) {
		return
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := sbom.Registry{Registry: registryOf(req)}
	atts, err := reg.Summaries(ctx, repositories(req.Build.Tags)[0]+"@"+res.Digest)
	if err != nil {
		log.Warn("the image is pushed, but its attestations could not be read back", "err", err)
	}
	res.Attestations = atts
	pub := pipeline.Publisher(pipeline.NopPublisher{})
	switch {
	case rt != nil:
		pub = rt.Events
	case s.NatsURL != "":
		ev := events.New(events.Options{URL: s.NatsURL, Prefix: s.EventsPrefix, Logger: log})
		defer ev.Close()
		pub = ev
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	pub.Publish(ctx, pipeline.AttestedEvent(req, *res))
}

func (r *Runtime) run(ctx context.Context, req pipeline.Request, o BuildOptions) (pipeline.Result, error) {
	req.Build.ProgressOut = o.Progress
	if req.Build.ProgressOut == nil {
		req.Build.ProgressOut = io.Discard
	}
	if o.Starting != nil {
		o.Starting()
	}
	return r.Pipeline.Run(ctx, req)
}
