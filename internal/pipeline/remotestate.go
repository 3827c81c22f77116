package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/compute"
)

// remoteStateSpec is the state a build asks the provider to keep: the
// namespaces its actor may read and write (nil unless Config.RemoteState).
func (p *Pipeline) remoteStateSpec(req Request) *compute.StateSpec {
	if !p.cfg.RemoteState {
		return nil
	}
	actor := req.Actor
	if actor.Kind == "" {
		actor = cache.Actor{Kind: cache.ActorCI}
	}
	read, write := cache.StateNamespaces(actor, req.Workspace, req.Cache.Disposition)
	return &compute.StateSpec{Read: read, Write: write}
}

// settleRemote ends an attempt's provider-kept state: after a clean
// success into a namespace the actor may write (and that ran anything),
// the state is pruned to its budget and committed on the runner; anything
// else is discarded when the runner is destroyed.
func (p *Pipeline) settleRemote(ctx context.Context, log *slog.Logger, r compute.Runner, sr compute.StatefulRunner, spec *compute.StateSpec, ok, unchanged bool) *StateReport {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DestroyTimeout)
	defer cancel()
	o := sr.StateOpened()
	rep := &StateReport{Namespace: o.Namespace, GenerationIn: o.Generation, BytesIn: o.Bytes, Target: spec.Write, CloneMS: o.OpenMS, Note: o.Note}
	switch {
	case spec.Write == "":
		rep.Note = firstNote(rep.Note, "this actor commits no state")
		return rep
	case !ok:
		rep.Note = "the build did not succeed"
		return rep
	case unchanged:
		rep.Note = "every step cached, nothing to commit"
		return rep
	case !o.Committable:
		return rep // the note says why there is no state
	}
	if p.cfg.StateKeepBytes > 0 {
		if c, err := r.Client(ctx); err == nil {
			if err := c.Prune(ctx, nil, client.WithKeepOpt(0, 0, p.cfg.StateKeepBytes, 0)); err != nil {
				log.Warn("pruning the state before commit failed", "err", err)
			}
			c.Close()
		}
	}
	start := time.Now()
	gen, err := sr.CommitState(ctx)
	rep.CommitMS = time.Since(start).Milliseconds()
	if err != nil {
		rep.Note = "commit failed: " + err.Error()
		log.Error("committing the runner state failed", "namespace", rep.Target, "err", err)
		return rep
	}
	rep.Committed, rep.GenerationOut, rep.Note = true, gen, ""
	log.Info("runner state committed", "namespace", rep.Target, "generation", gen, "commit_ms", rep.CommitMS)
	return rep
}

func firstNote(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
