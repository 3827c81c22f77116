package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/state"
)

// StateReport is the runner state a build started from and what became of
// it (Config.State): the report's "state" line, the events' and
// --report-json's "state" object.
type StateReport struct {
	// Namespace is the state cloned for the build ("": none existed yet,
	// the build started from an empty state and the registry cache).
	Namespace    string `json:"namespace,omitempty"`
	GenerationIn int    `json:"generation_in"`
	BytesIn      int64  `json:"bytes_in,omitempty"`
	// BytesGeneration is the earlier generation BytesIn was measured on
	// (0: GenerationIn itself). The store measures once every few
	// generations (state.Store.Tidy).
	BytesGeneration int `json:"bytes_generation,omitempty"`
	// Target is the namespace the build may commit to ("": none, as for
	// ci_aux and a discarding session).
	Target        string `json:"target,omitempty"`
	GenerationOut int    `json:"generation_out,omitempty"`
	Committed     bool   `json:"committed"`
	CloneMS       int64  `json:"clone_ms"`
	CommitMS      int64  `json:"commit_ms,omitempty"`
	// Note says why nothing was committed, or what went wrong.
	Note string `json:"note,omitempty"`
}

// Line is the report's one-line summary.
func (s *StateReport) Line() string {
	if s == nil {
		return "no state (registry cache only)"
	}
	from := "no state yet (registry cache only)"
	if s.Namespace != "" {
		from = fmt.Sprintf("state %s gen %d", s.Namespace, s.GenerationIn)
		switch {
		case s.BytesIn == 0: // never measured yet (Store.Tidy)
		case s.BytesGeneration != 0:
			from += " (≈" + humanBytes(s.BytesIn) + ")"
		default:
			from += " (" + humanBytes(s.BytesIn) + ")"
		}
	}
	switch {
	case s.Committed:
		return fmt.Sprintf("%s → committed %s gen %d", from, s.Target, s.GenerationOut)
	case s.Note != "":
		return fmt.Sprintf("%s → not committed: %s", from, s.Note)
	}
	return from
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d kB", n>>10)
}

// stateClone is one attempt's clone of the runner state.
type stateClone struct {
	clone  *state.Clone
	report StateReport
	// stopTidy ends tidy (it gives up what is left) and waits for it;
	// size is the size it found of the namespace cloned.
	stopTidy func()
	size     state.Size
}

// tidy runs Store.Tidy beside the build for the namespace the clone came
// from and the one it may commit to: what their last commits left (the
// superseded generation, the size) is done while the build runs, not while
// it commits. endTidy stops it when the attempt settles.
func (sc *stateClone) tidy(ctx context.Context, st *state.Store, log *slog.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	sc.stopTidy = func() { cancel(); <-done }
	from, target := sc.report.Namespace, sc.report.Target
	go func() {
		defer close(done)
		for i, ns := range []string{from, target} {
			if ns == "" || (i == 1 && ns == from) {
				continue
			}
			size, err := st.Tidy(ctx, ns)
			if err != nil && ctx.Err() == nil {
				log.Warn("tidying the state store failed; `lian-build state gc` will", "namespace", ns, "err", err)
			}
			if ns == from {
				sc.size = size
			}
		}
	}()
}

// endTidy stops tidy; the report takes the size it measured of the
// generation cloned, if it did.
func (sc *stateClone) endTidy() {
	if sc.stopTidy == nil {
		return
	}
	sc.stopTidy()
	sc.stopTidy = nil
	if sc.size.Generation == sc.report.GenerationIn && sc.size.Bytes > 0 {
		sc.report.BytesIn, sc.report.BytesGeneration = sc.size.Bytes, 0
	}
}

// cloneState clones the state the build's actor may read (nil without a store).
func (p *Pipeline) cloneState(ctx context.Context, req Request, id string) (*stateClone, error) {
	if p.cfg.State == nil {
		return nil, nil
	}
	actor := req.Actor
	if actor.Kind == "" {
		actor = cache.Actor{Kind: cache.ActorCI}
	}
	read, write := cache.StateNamespaces(actor, req.Workspace, req.Cache.Disposition)
	c, err := p.cfg.State.Clone(ctx, id, state.CloneOptions{Read: read, Write: write})
	if err != nil {
		return nil, err
	}
	rep := StateReport{Namespace: c.From, GenerationIn: c.Generation, BytesIn: c.Bytes, Target: write, CloneMS: c.CloneTime.Milliseconds()}
	if c.BytesGen != c.Generation {
		rep.BytesGeneration = c.BytesGen
	}
	if write == "" {
		rep.Note = "this actor commits no state"
	}
	return &stateClone{clone: c, report: rep}, nil
}

// settle ends the attempt's state: after a clean success into a namespace
// the actor may write, the state is pruned to its budget while buildkitd
// runs, buildkitd is stopped, and the clone committed; otherwise buildkitd
// is stopped and the clone discarded. A build whose every step came from
// the cache ran nothing and changed no cache mount: its namespace keeps the
// generation it has, at no cost (state.Clone.Keep). It destroys the runner
// either way.
func (sc *stateClone) settle(ctx context.Context, p *Pipeline, log *slog.Logger, r compute.Runner, ok, unchanged bool, writer string) *StateReport {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DestroyTimeout)
	defer cancel()
	defer sc.endTidy()
	rep := &sc.report
	commit := ok && rep.Target != ""
	if commit && unchanged {
		commit, rep.Note = false, "every step cached, nothing to commit"
	}
	if commit && p.cfg.StateKeepBytes > 0 {
		if c, err := r.Client(ctx); err == nil {
			err = c.Prune(ctx, nil, client.WithKeepOpt(0, 0, p.cfg.StateKeepBytes, 0))
			c.Close()
			if err != nil {
				log.Warn("pruning the state before commit failed", "err", err)
			}
		}
	}
	stopped := r.Destroy(ctx) == nil
	if !stopped {
		commit, rep.Note = false, "buildkitd did not stop cleanly"
	}
	if !commit {
		if !ok && rep.Note == "" {
			rep.Note = "the build did not succeed"
		}
		end := sc.clone.Discard
		if ok && unchanged && stopped {
			end = func() error { return sc.clone.Keep(ctx) }
		}
		if err := end(); err != nil {
			log.Error("discarding the state clone failed; `lian-build state gc` will", "err", err)
		}
		return rep
	}
	start := time.Now()
	gen, err := sc.clone.Commit(ctx, rep.Target, writer)
	rep.CommitMS = time.Since(start).Milliseconds()
	if err != nil {
		rep.Note = "commit failed: " + err.Error()
		log.Error("committing the runner state failed", "namespace", rep.Target, "err", err)
		_ = sc.clone.Discard()
		return rep
	}
	rep.Committed, rep.GenerationOut = true, gen
	log.Info("runner state committed", "namespace", rep.Target, "generation", gen, "commit_ms", rep.CommitMS)
	if evicted, err := p.cfg.State.Evict(ctx, rep.Target); err != nil || len(evicted) > 0 {
		log.Info("state eviction", "evicted", evicted, "err", err)
	}
	return rep
}
