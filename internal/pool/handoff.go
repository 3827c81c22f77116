package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/pool/poolapi"
)

// A VM retired at the end of its billed hour hands the namespaces it alone
// holds the newest state of to the VMs that stay (Policy.HandOff): its
// committed generation streams from its disk through the pool to the
// successor's (warm-export | warm-import), which makes it its own
// generation as a commit does. A failed hand-off loses nothing the
// successor had; the state goes with the VM, as it did before.

// retireHandingOff claims a VM for retirement, hands its state on as r
// plans, and retires it.
func (s *Service) retireHandingOff(ctx context.Context, e entry, r Retirement, entries []entry) error {
	if len(r.HandOff) == 0 {
		return s.retire(ctx, e, r.Reason)
	}
	v := e.VM
	v.State, v.Since = StateRetiring, s.o.Now()
	e, err := s.o.Store.Update(ctx, e, v)
	if err != nil {
		return err
	}
	for _, ns := range slices.Sorted(maps.Keys(r.HandOff)) {
		if err := s.handOne(ctx, v, ns, find(entries, r.HandOff[ns])); err != nil {
			s.o.Logger.Warn("warm state not handed on", "vm", v.ID, "namespace", ns, "to", r.HandOff[ns], "err", err)
		}
	}
	return s.retire(ctx, e, r.Reason)
}

// handOne copies from's generation of ns to the idle VM e, claimed while
// it imports, and records it there.
func (s *Service) handOne(ctx context.Context, from VM, ns string, e entry) error {
	to := e.VM
	if to.State != StateIdle {
		return fmt.Errorf("%s is %s", to.ID, to.State)
	}
	to.State, to.Since = StateRecycling, s.o.Now()
	e, err := s.o.Store.Update(ctx, e, to)
	if err != nil {
		return err
	}
	w := from.Warm[ns]
	g, err := s.copyGeneration(ctx, from, to, ns, w.Generation)
	if err == nil {
		if to.Warm == nil {
			to.Warm = map[string]Warm{}
		}
		to.Warm[ns] = Warm{Generation: g.N, Committed: w.Committed, Bytes: g.Bytes}
		s.o.Logger.Info("warm state handed on", "from", from.ID, "to", to.ID, "namespace", ns, "generation", g.N, "bytes", g.Bytes)
		s.o.Metrics.warmHandedOff(to.Tier)
	}
	to.State, to.Since = StateIdle, s.o.Now()
	_, uerr := s.o.Store.Update(ctx, e, to)
	return errors.Join(err, uerr)
}

// copyGeneration streams generation gen of ns from one VM's disk to
// another's, through this process.
func (s *Service) copyGeneration(ctx context.Context, from, to VM, ns string, gen int) (remote.Generation, error) {
	var g remote.Generation
	dir := poolapi.WarmDir(ns)
	_, err := s.onMachine(ctx, from, func(src *sshx.Conn) error {
		_, err := s.onMachine(ctx, to, func(dst *sshx.Conn) error {
			pr, pw := io.Pipe()
			var wg sync.WaitGroup
			var exportErr error
			wg.Go(func() {
				exportErr = src.RunStream(ctx, remote.ScriptCommand("warm-export", dir), strings.NewReader(""), pw)
				pw.CloseWithError(exportErr)
			})
			var out strings.Builder
			importErr := dst.RunStream(ctx, remote.ScriptCommand("warm-import", dir, strconv.Itoa(gen)), pr, &out)
			pr.CloseWithError(errors.New("the import ended"))
			wg.Wait()
			if err := errors.Join(exportErr, importErr); err != nil {
				return err
			}
			var err error
			g, err = remote.ParseGeneration("warm-import", out.String())
			return err
		})
		return err
	})
	return g, err
}
