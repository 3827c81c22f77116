package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/sizing"
)

// NewBuildID returns a fresh build id.
func NewBuildID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "b" + hex.EncodeToString(b)
}

// Run executes one build through the steps of docs/architecture.md. The Result is
// filled as far as the build got, also when err is not nil.
func (p *Pipeline) Run(ctx context.Context, req Request) (res Result, err error) {
	if req.BuildID == "" {
		req.BuildID = NewBuildID()
	}
	res = p.newResult(req)
	log := p.cfg.Logger.With("build_id", req.BuildID, "workspace", req.Workspace)
	defer func() { res.stamp(err) }()

	dec, plan, err := p.prepare(ctx, log, &req, &res)
	if err != nil && ctx.Err() != nil {
		return p.Abandon(ctx, req, err), err
	} else if err != nil {
		res.Outcome = OutcomeError
		return res, err
	}
	// 2. build.started
	p.publish(ctx, event(EventStarted, req, res, 1))
	defer func() {
		// 8. build.completed / build.failed — also after a panic in a later
		// step; not when the caller runs the build again.
		if errors.Is(context.Cause(ctx), ErrInterrupted) {
			log.Info("interrupted: no build.failed; the build's next run ends it")
			return
		}
		name := EventCompleted
		if err != nil || res.Outcome != OutcomeSuccess {
			name = EventFailed
		}
		res.stamp(err)
		p.publish(ctx, event(name, req, res, len(res.Attempts)))
	}()
	err = p.attempts(ctx, log, req, &res, dec, plan)
	return res, err
}

// Abandon ends a build that stopped before Run could take it, or as Run
// began: its source not fetched, its directives refused, a newer push
// superseding it while it was queued. It publishes build.started and
// build.failed, so that every build a front door accepted is seen to start
// and end, and a run an interruption left started is ended. When ctx was
// interrupted (the build runs again) it publishes nothing.
func (p *Pipeline) Abandon(ctx context.Context, req Request, err error) Result {
	res := p.newResult(req)
	res.Outcome, res.SizingSource = OutcomeError, sizing.SourceNone
	if ctx.Err() != nil {
		res.Outcome = OutcomeCanceled
	}
	res.stamp(err)
	if errors.Is(context.Cause(ctx), ErrInterrupted) {
		return res
	}
	p.publish(ctx, event(EventStarted, req, res, 1))
	p.publish(ctx, event(EventFailed, req, res, 0))
	return res
}

// newResult is req's result as its build starts.
func (p *Pipeline) newResult(req Request) Result {
	return Result{BuildID: req.BuildID, Workspace: req.Workspace, Provider: p.cfg.Provider.Name(), StartedAt: time.Now(), Tags: req.Build.Tags,
		Actor: req.Actor.String(), Provenance: req.Build.Provenance.Mode}
}

// prepare validates the request, resolves the sizing (step 1) and plans the
// cache namespaces: everything refused here is refused before a runner exists.
func (p *Pipeline) prepare(ctx context.Context, log *slog.Logger, req *Request, res *Result) (sizing.Decision, cache.Plan, error) {
	if err := req.Validate(); err != nil {
		return sizing.Decision{}, cache.Plan{}, err
	}
	dec, err := p.resolveSizing(ctx, *req)
	if err != nil {
		return dec, cache.Plan{}, err
	}
	res.Tier, res.SizingSource, res.SizingReason, res.SizingSuggestion = dec.Tier.Name, dec.Source, dec.Reason, dec.Suggestion
	log.Info("sizing resolved", "tier", dec.Tier.Name, "source", dec.Source, "reason", dec.Reason)
	plan, err := p.planCache(*req)
	if err != nil {
		return dec, plan, err
	}
	req.Build.CacheFrom = append(append([]buildkit.CacheEntry(nil), req.Build.CacheFrom...), plan.Imports...)
	req.Build.CacheTo = append(append([]buildkit.CacheEntry(nil), req.Build.CacheTo...), plan.Exports...)
	res.CacheImports, res.CacheExports = plan.ImportRefs(), plan.ExportRefs()
	if plan.Promote != nil || len(plan.Imports) > 0 {
		log.Info("cache plan", "plan", plan.Describe())
	}
	if req.LeaseTTL <= 0 {
		req.LeaseTTL = dec.Budget + 10*time.Minute
	}
	if req.Expected <= 0 {
		req.Expected = p.expectedDuration(ctx, *req)
	}
	return dec, plan, nil
}

// expectedDuration is the P95 duration of the workspace's recorded builds
// (0: none, or the history cannot be read — it only informs a pool).
func (p *Pipeline) expectedDuration(ctx context.Context, req Request) time.Duration {
	if p.cfg.History == nil || req.Workspace == "" {
		return 0
	}
	u, ok, err := p.cfg.History.P95(ctx, req.Workspace)
	if err != nil || !ok {
		return 0
	}
	return u.Duration
}

// budgetContext bounds the build (not the caller) by the time budget.
func budgetContext(ctx context.Context, budget time.Duration) (context.Context, context.CancelFunc) {
	if budget <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, budget, errBudget)
}

// attempts runs steps 3–6, with at most one OOM retry on the next tier. The
// time budget counts the builds, not the spawns.
func (p *Pipeline) attempts(ctx context.Context, log *slog.Logger, req Request, res *Result, dec sizing.Decision, plan cache.Plan) error {
	tier := dec.Tier
	remaining := dec.Budget
	var oomTiers []string
	for n := 1; ; n++ {
		a, out := p.runAttempt(ctx, log, req, n, tier, remaining)
		if dec.Budget > 0 {
			remaining = max(remaining-out.built, time.Millisecond)
		}
		res.Attempts = append(res.Attempts, a)
		res.CostEUR += a.CostEUR
		res.Tier, res.State = tier.Name, out.state
		res.StepsTotal, res.StepsCached, res.StepsCacheable = out.report.Steps.Total, out.report.Steps.Cached, out.report.Steps.Cacheable
		if u := usageOf(out.samples); u.Samples > 0 {
			res.Usage = &u
		}
		if out.err == nil {
			return p.succeed(ctx, log, req, res, plan, out, n)
		}
		if be, ok := buildkit.ErrIsBuild(out.err); ok {
			f := be.Failure
			res.Failure = &f
		}
		if cerr := out.ctxErr; cerr != nil {
			res.Outcome = outcomeOf(cerr)
			return cerr
		}
		if !out.oom {
			res.Outcome = OutcomeFailure
			if a.Outcome == OutcomeError {
				res.Outcome = OutcomeError
			}
			return out.err
		}
		oomTiers = append(oomTiers, tier.Name)
		next, nerr := p.cfg.Provider.Tiers().Next(tier.Name)
		if !shouldRetryOnOOM(true, res.OOMRetries, nerr == nil) {
			res.Outcome = OutcomeOOM
			p.recordMetrics(ctx, req, *res)
			return &OOMError{Tiers: oomTiers, Err: out.err}
		}
		log.Warn("out of memory; retrying once on the next tier", "tier", tier.Name, "next", next.Name)
		res.OOMRetries++
		tier = next
	}
}

// succeed finishes a successful attempt: the rollback promotion, metrics.
func (p *Pipeline) succeed(ctx context.Context, log *slog.Logger, req Request, res *Result, plan cache.Plan, out attemptOutcome, n int) error {
	res.Outcome, res.Digest, res.Failure = OutcomeSuccess, out.report.Digest, nil
	if plan.Promote != nil {
		// 'rollback: only a successful build replaces the session cache.
		if err := p.promote(ctx, req, *plan.Promote); err != nil {
			res.Outcome = OutcomeError
			return err
		}
		res.CachePromoted = plan.Promote.To
	}
	p.recordMetrics(ctx, req, *res)
	log.Info("build succeeded", "attempts", n, "steps_cached", res.StepsCached, "steps_total", res.StepsTotal)
	return nil
}

var errBudget = errors.New("time budget exceeded")

// contextErr tells a caller's cancel and a budget timeout apart from a build failure.
func contextErr(ctx, bctx context.Context, budget time.Duration) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrCanceled, context.Cause(ctx))
	}
	if errors.Is(context.Cause(bctx), errBudget) {
		return &TimeoutError{Budget: budget, Err: errBudget}
	}
	return nil
}

func outcomeOf(err error) Outcome {
	var te *TimeoutError
	if errors.As(err, &te) {
		return OutcomeTimeout
	}
	return OutcomeCanceled
}

// recordMetrics is step 7; its failure is logged, not fatal.
func (p *Pipeline) recordMetrics(ctx context.Context, req Request, res Result) {
	if res.Usage == nil || req.Workspace == "" {
		return
	}
	res.stamp(nil) // step 7 runs before step 8 finalizes the result
	if err := p.cfg.Metrics.Record(context.WithoutCancel(ctx), req.Workspace, *res.Usage, res); err != nil {
		p.cfg.Logger.Warn("recording build metrics failed", "build_id", req.BuildID, "err", err)
	}
}

// stamp sets the finish time, the duration and, for a failure, the error.
func (r *Result) stamp(err error) {
	r.FinishedAt = time.Now()
	r.DurationMS = r.FinishedAt.Sub(r.StartedAt).Milliseconds()
	if err != nil {
		r.Error = err.Error()
	}
}
