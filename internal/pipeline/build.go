package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

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
}

// runAttempt is steps 3–7 for one tier: spawn, build while sampling, classify, destroy.
func (p *Pipeline) runAttempt(ctx context.Context, log *slog.Logger, req Request, n int, tier sizing.Tier, ttl time.Duration) (Attempt, attemptOutcome) {
	a := Attempt{Number: n, Tier: tier.Name}
	start := time.Now()
	r, id, err := p.spawnRunner(ctx, req.BuildID, n, tier, ttl)
	a.RunnerID = id
	a.SpawnMS = time.Since(start).Milliseconds()
	if err != nil {
		a.Outcome, a.Error = OutcomeError, err.Error()
		a.DurationMS = time.Since(start).Milliseconds()
		return a, attemptOutcome{err: err}
	}
	defer p.destroyRunner(ctx, log, r, id)
	log = log.With("runner", id, "tier", tier.Name, "attempt", n)
	log.Info("runner ready", "spawn_ms", a.SpawnMS)

	out := p.build(ctx, r, req.Build)
	a.DurationMS = time.Since(start).Milliseconds()
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

// build is step 5 on a ready runner.
func (p *Pipeline) build(ctx context.Context, r compute.Runner, opts buildkit.Options) attemptOutcome {
	before, statsErr := r.Stats(ctx)
	sctx, stopSampling := context.WithCancel(ctx)
	smp := &sampler{}
	done := make(chan struct{})
	go func() { defer close(done); smp.run(sctx, r, p.cfg.SampleEvery) }()

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
	if err == nil {
		return out
	}
	sig := buildkit.Signals{Err: err, ExitCode: buildkit.ExitCode(err)}
	var be *buildkit.BuildError
	if errors.As(err, &be) {
		sig.StepError, sig.LogTail = be.Failure.Error, be.Failure.LogTail
		out.report = be.Report
	}
	if after, err2 := r.Stats(context.WithoutCancel(ctx)); err2 == nil && statsErr == nil && after.OOMKills > before.OOMKills {
		sig.OOMKillDelta = after.OOMKills - before.OOMKills
	}
	// A cancelled build is never an OOM, whatever the killed processes say.
	out.oom = ctx.Err() == nil && buildkit.IsOOM(sig)
	return out
}
