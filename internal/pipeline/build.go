package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/lian-build/action/internal/version"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
)

// attemptOutcome is one attempt's build result and what its runner measured.
type attemptOutcome struct {
	report  buildkit.Report
	err     error
	oom     bool
	samples []compute.Stats
	// ctxErr is the caller's cancel or the budget running out, when either ended the attempt.
	ctxErr error
	// built is how long the build ran (the budget's share of the attempt).
	built time.Duration
	// state is what became of the runner state (nil: no store).
	state *StateReport
}

// runAttempt is steps 3–6 for one tier: spawn (on a clone of the runner
// state, with a store), build while sampling, classify, settle the state,
// destroy. budget (0: none) bounds the build, not the spawn.
func (p *Pipeline) runAttempt(ctx context.Context, log *slog.Logger, req Request, n int, tier sizing.Tier, budget time.Duration) (Attempt, attemptOutcome) {
	a := Attempt{Number: n, Tier: tier.Name, RunnerID: leaseID(req.BuildID, n)}
	start := time.Now()
	failed := func(err error) (Attempt, attemptOutcome) {
		a.Outcome, a.Error = OutcomeError, err.Error()
		a.DurationMS = time.Since(start).Milliseconds()
		return a, attemptOutcome{err: err, ctxErr: contextErr(ctx, ctx, 0)}
	}
	sc, err := p.cloneState(ctx, req, a.RunnerID)
	if err != nil {
		return failed(fmt.Errorf("runner state: %w", err))
	}
	stateDir := ""
	if sc != nil {
		defer func() { _ = sc.clone.Discard() }() // after a panic too; a no-op once settled
		stateDir = sc.clone.Dir
		sc.tidy(ctx, p.cfg.State, log)
		defer sc.endTidy()
	}
	r, err := p.spawnRunner(ctx, req, n, tier, stateDir)
	a.SpawnMS = time.Since(start).Milliseconds()
	if err != nil {
		return failed(err)
	}
	defer p.destroyRunner(ctx, log, r, a.RunnerID)
	info := r.Info()
	a.Runner = &info
	log = log.With("runner", a.RunnerID, "tier", tier.Name, "attempt", n)
	log.Info("runner ready", "spawn_ms", a.SpawnMS, "server", info.Server, "type", info.Type, "location", info.Location, "kernel", info.Kernel, "cgroup", info.CgroupVersion)

	bctx, cancel := budgetContext(ctx, budget)
	defer cancel()
	built := time.Now()
	out := p.build(bctx, r, withBuilder(req.Build, p.cfg.Provider.Name(), tier.Name))
	out.built = time.Since(built)
	a.ContextStream = out.report.ContextStream
	switch cs := a.ContextStream; {
	case cs == nil:
	case cs.Note != "":
		log.Info("context not streamed", "why", cs.Note)
	default:
		log.Info("context streamed", "bytes", cs.Bytes)
	}
	out.ctxErr = contextErr(ctx, bctx, budget)
	if o, ok := r.(compute.OutcomeSetter); ok {
		o.SetOutcome(out.runnerOutcome())
	}
	steps := out.report.Steps
	ok, unchanged := out.err == nil && out.ctxErr == nil, steps.Unchanged()
	if sc != nil {
		out.state = sc.settle(ctx, p, log, r, ok, unchanged, req.Actor.String())
	} else if sr, isStateful := r.(compute.StatefulRunner); isStateful && p.cfg.RemoteState {
		out.state = p.settleRemote(ctx, log, r, sr, p.remoteStateSpec(req), ok, unchanged)
	}
	a.DurationMS = time.Since(start).Milliseconds()
	if info.Price != nil {
		a.CostEUR = info.Price.Cost(time.Since(start))
	}
	a.OOM = out.oom
	switch {
	case out.err == nil:
		a.Outcome = OutcomeSuccess
	case out.oom:
		a.Outcome, a.Error = OutcomeOOM, out.err.Error()
	default:
		a.Outcome, a.Error = OutcomeFailure, out.err.Error()
	}
	return a, out
}

// runnerOutcome is what the runner is told: ok only for a build that
// succeeded within its time.
func (o attemptOutcome) runnerOutcome() compute.Outcome {
	switch {
	case o.err == nil && o.ctxErr == nil:
		return compute.OutcomeOK
	case o.oom:
		return compute.OutcomeOOM
	}
	return compute.OutcomeError
}

// build is step 4 on a ready runner.
func (p *Pipeline) build(ctx context.Context, r compute.Runner, opts buildkit.Options) attemptOutcome {
	before, statsErr := baseline(ctx, r)
	sctx, stopSampling := context.WithCancel(ctx)
	smp := &sampler{}
	if statsErr == nil {
		// The baseline is the first sample: over SSH a second reading at
		// the same moment is a session and a process beside the solve's start.
		smp.samples = []compute.Stats{before}
	}
	done := make(chan struct{})
	every := max(p.cfg.SampleEvery, compute.FeaturesOf(p.cfg.Provider.Name()).SampleEvery)
	go func() { defer close(done); smp.run(sctx, r, every) }()

	if cs, ok := contextAsStream(r); ok {
		// zstd: source trees shrink 4× (BenchmarkSourceTreeOverLink); a
		// context that does not shrink goes plain (buildkit.zstdIfItPays).
		opts.ContextStream, opts.ContextZstd = cs.ListenOnRunner, true
	}
	c, err := r.Client(ctx)
	var rep buildkit.Report
	if err == nil {
		rep, err = buildkit.Build(ctx, c, opts)
		c.Close()
	}
	stopSampling()
	<-done
	smp.take(context.WithoutCancel(ctx), r) // the last reading carries the peak
	out := attemptOutcome{report: rep, err: err, samples: smp.all()}
	if err != nil {
		out.diagnose(ctx, r, before, statsErr)
	}
	return out
}

// diagnose says why an attempt's build failed: a runner that died or can no
// longer be reached says so (the gRPC error alone, "error reading from
// server: EOF", does not), and whether it ran out of memory. The runner's
// health settles first: an engine that has not yet seen an OOM kill cannot
// count it in the runner's stats either.
func (o *attemptOutcome) diagnose(ctx context.Context, r compute.Runner, before compute.Stats, statsErr error) {
	sig := buildkit.Signals{Err: o.err, ExitCode: buildkit.ExitCode(o.err)}
	var be *buildkit.BuildError
	if errors.As(o.err, &be) {
		sig.StepError, sig.LogTail = be.Failure.Error, be.Failure.LogTail
		o.report = be.Report
	}
	if herr := settledHealth(context.WithoutCancel(ctx), r, o.err); herr != nil && ctx.Err() == nil {
		o.err = fmt.Errorf("%w (the runner is gone: %v)", o.err, herr)
		sig.Err = o.err
	}
	if statsErr != nil && len(o.samples) > 0 {
		before, statsErr = o.samples[0], nil // read as the build started
	}
	if kills, ok := o.oomKills(context.WithoutCancel(ctx), r); ok && statsErr == nil && kills > before.OOMKills {
		sig.OOMKillDelta = kills - before.OOMKills
	}
	// A cancelled build is never an OOM, whatever the killed processes say.
	o.oom = ctx.Err() == nil && buildkit.IsOOM(sig)
}

// oomKills is the runner's OOM kill count after a failed build: the
// highest of a reading now and the attempt's samples (a guest slowed by the
// OOM it would tell of may not answer at once, or at all).
func (o *attemptOutcome) oomKills(ctx context.Context, r compute.Runner) (uint64, bool) {
	after, err := readStats(ctx, r)
	kills, ok := after.OOMKills, err == nil
	for _, s := range o.samples {
		kills, ok = max(kills, s.OOMKills), true
	}
	return kills, ok
}

// statsTries bounds readStats.
const statsTries = 3

// baseline is the runner's counters before its build: those it read as it
// became ready (compute.Baseliner), else a reading now.
func baseline(ctx context.Context, r compute.Runner) (compute.Stats, error) {
	if b, ok := r.(compute.Baseliner); ok {
		if s, ok := b.Baseline(); ok {
			return s, nil
		}
	}
	return readStats(ctx, r)
}

// readStats reads the runner's counters, trying again when a reading
// fails: the counters an OOM is told by are worth a second of waiting.
func readStats(ctx context.Context, r compute.Runner) (compute.Stats, error) {
	var err error
	for i := 1; ; i++ {
		var s compute.Stats
		if s, err = r.Stats(ctx); err == nil || i == statsTries {
			return s, err
		}
		select {
		case <-ctx.Done():
			return compute.Stats{}, err
		case <-time.After(time.Duration(i) * 300 * time.Millisecond):
		}
	}
}

// contextAsStream says whether a runner's context goes as streams, and
// through what: it can take one (compute.ContextStreamer) and its daemon
// starts without an earlier build's files, where the session's file sync
// would send all of it, bound by its flow-control windows and round trips.
// On opened state the file sync sends only what changed since.
func contextAsStream(r compute.Runner) (compute.ContextStreamer, bool) {
	cs, ok := r.(compute.ContextStreamer)
	if sr, stateful := r.(compute.StatefulRunner); ok && stateful && sr.StateOpened().Namespace != "" {
		return nil, false
	}
	return cs, ok
}

// BuilderURI is lian-build's URI in a provenance attestation's builder id.
const BuilderURI = "https://github.com/lian-build/action"

// withBuilder names the builder of an attempt in its provenance:
// lian-build's version, the runner's provider and tier.
func withBuilder(o buildkit.Options, provider, tier string) buildkit.Options {
	if o.Provenance.Mode != "" {
		o.Provenance.BuilderID = fmt.Sprintf("%s@%s?provider=%s&tier=%s", BuilderURI, url.PathEscape(version.Short()), url.QueryEscape(provider), url.QueryEscape(tier))
	}
	return o
}

// settledHealth is the runner's health after a build error. When the error
// is the connection to buildkitd dropping, the runner may still look alive
// for a moment (its engine has not yet seen the daemon's death, or its
// OOM kill): ask again, briefly, before taking it as healthy.
func settledHealth(ctx context.Context, r compute.Runner, buildErr error) error {
	herr := r.Health(ctx)
	if herr != nil || status.Code(buildErr) != codes.Unavailable {
		return herr
	}
	for i := 0; i < 20 && herr == nil; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		herr = r.Health(ctx)
	}
	return herr
}
