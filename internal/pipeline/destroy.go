package pipeline

import (
	"context"
	"log/slog"

	"github.com/lian-build/action/internal/compute"
)

// destroyRunner is step 6. It runs whatever happened to the caller's context:
// cancellation does not stop a teardown, a timeout bounds it.
func (p *Pipeline) destroyRunner(ctx context.Context, log *slog.Logger, r compute.Runner, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DestroyTimeout)
	defer cancel()
	if err := r.Destroy(ctx); err != nil {
		// The lease record stays behind for `runners gc`.
		log.Error("runner teardown failed; the reaper will retry", "runner", id, "err", err)
		return
	}
	log.Debug("runner destroyed", "runner", id)
}
