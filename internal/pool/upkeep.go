package pool

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// NotFoundError is a lease the pool does not hold (ended, or never given).
type NotFoundError struct{ Lease string }

func (e *NotFoundError) Error() string { return "pool: no lease " + e.Lease }

// Return ends a lease. After an ok build that asks for it, the lease's warm
// state is committed on the VM; the VM is then recycled and waits idle for
// the next lease (a failed build's too: the recycle removes all it left,
// and the VM's committed state is what a failure must not lose). A VM
// returned after an OOM, or whose cgroup counted an OOM kill, or that
// fails to recycle, is destroyed.
func (s *Service) Return(ctx context.Context, leaseID string, ret Return) (Disposition, error) {
	switch ret.Outcome {
	case "ok", "oom", "error":
	default:
		return Disposition{}, &RequestError{Field: "outcome", Msg: fmt.Sprintf("%q: want ok, oom or error", ret.Outcome)}
	}
	e, err := s.byLease(ctx, leaseID)
	if err != nil {
		return Disposition{}, err
	}
	lease := *e.Lease
	d := Disposition{VM: e.ID}
	// The first return claims the VM by compare-and-set; a concurrent one
	// that loses gets the same answer as a repeated one: already returned.
	v := e.VM
	v.State, v.Since, v.Lease, v.Leases = StateRecycling, s.o.Now(), nil, v.Leases+1
	if ret.Outcome == "oom" {
		v.State = StateRetiring
	}
	if e, err = s.o.Store.Update(ctx, e, v); errors.Is(err, ErrConflict) {
		d.Reason = "already returned"
		return d, nil
	} else if err != nil {
		return d, err
	}
	s.o.Metrics.returned(e.Tier, ret.Outcome, s.o.Now().Sub(lease.Started))
	if !ret.Async {
		return s.settle(ctx, e, lease, ret)
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*s.o.SSHTimeout)
		defer cancel()
		if d, err := s.settle(bctx, e, lease, ret); err != nil {
			s.o.Logger.Warn("settling a returned VM failed", "vm", e.ID, "lease", lease.ID, "reason", d.Reason, "err", err)
		}
	}()
	d.Reason = "returned; committed and recycled after this answer"
	return d, nil
}

// Wait waits for the returns still being settled in the background.
func (s *Service) Wait() { s.bg.Wait() }

// settle is what follows a VM's return, claimed as e: its lease's warm
// state committed (an ok build that asked), the VM recycled and idle — or
// retired when it may not serve again.
func (s *Service) settle(ctx context.Context, e entry, lease Lease, ret Return) (Disposition, error) {
	d, v := Disposition{VM: e.ID}, e.VM
	if reason := s.unfit(ctx, &v, ret.Outcome); reason != "" {
		d.Reason = reason
		return d, s.retire(ctx, e, d.Reason)
	}
	// A failed build's state is not committed; its VM is recycled like any.
	if entries, err := s.o.Store.All(ctx); err != nil {
		s.o.Logger.Warn("warm state not committed: the store cannot be read", "vm", v.ID, "err", err)
	} else if err := s.warmCommit(ctx, &v, lease, ret, vmsOf(entries)); err != nil {
		s.o.Logger.Warn("warm state not committed", "vm", v.ID, "err", err)
	}
	if err := s.warmEvict(ctx, &v); err != nil {
		s.o.Logger.Warn("warm state not evicted", "vm", v.ID, "err", err)
	}
	if _, err := s.makeReady(ctx, &v, &lease); err != nil {
		d.Reason = "recycle failed: " + err.Error()
		return d, s.retire(ctx, e, d.Reason)
	}
	v.State, v.Since = StateIdle, s.o.Now()
	if _, err := s.o.Store.Update(ctx, e, v); err != nil {
		return d, err
	}
	d.Kept, d.Reason = true, "recycled; idle until "+BilledUntil(v.Created, s.o.Now()).Add(-s.o.Policy.retireBefore()).UTC().Format(time.RFC3339)
	return d, nil
}

// unfit says why a returned VM may not serve again ("": it may): an OOM
// (its memory counters are spent), a draining pool, or OOM kills the
// build's cgroup counted.
func (s *Service) unfit(ctx context.Context, v *VM, outcome string) string {
	if outcome == "oom" {
		return "returned with outcome oom"
	}
	if draining, _ := s.o.Store.Draining(ctx); draining {
		return "the pool is draining"
	}
	if n, err := s.oomKills(ctx, v); err != nil || n > 0 {
		return fmt.Sprintf("its cgroup counted %d OOM kills (%v)", n, err)
	}
	return ""
}

// Renew extends a lease by compare-and-set: it expires rn.TTLSeconds from
// now, at most MaxTTL after it began. A lease returned or reclaimed is not
// found.
func (s *Service) Renew(ctx context.Context, leaseID string, rn Renewal) (Lease, error) {
	if err := rn.Check(); err != nil {
		return Lease{}, err
	}
	for ctx.Err() == nil {
		e, err := s.byLease(ctx, leaseID)
		if err != nil {
			return Lease{}, err
		}
		v := e.VM
		l := *v.Lease
		l.Expires = s.o.Now().Add(time.Duration(rn.TTLSeconds) * time.Second)
		if limit := l.Started.Add(MaxTTL); l.Expires.After(limit) {
			l.Expires = limit
		}
		v.Lease = &l
		if _, err := s.o.Store.Update(ctx, e, v); !errors.Is(err, ErrConflict) {
			return l, err
		}
	}
	return Lease{}, ctx.Err()
}

func (s *Service) byLease(ctx context.Context, leaseID string) (entry, error) {
	entries, err := s.o.Store.All(ctx)
	if err != nil {
		return entry{}, err
	}
	for _, e := range entries {
		if e.State == StateLeased && e.Lease != nil && e.Lease.ID == leaseID {
			return e, nil
		}
	}
	return entry{}, &NotFoundError{Lease: leaseID}
}

// retire destroys a VM: claimed as retiring by compare-and-set (a VM
// another replica claimed first is left to it), its server deleted, then
// its entry. A failed delete leaves the entry retiring, for the next upkeep.
func (s *Service) retire(ctx context.Context, e entry, reason string) error {
	ctx = context.WithoutCancel(ctx)
	v := e.VM
	if v.State != StateRetiring {
		v.State, v.Since = StateRetiring, s.o.Now()
		var err error
		if e, err = s.o.Store.Update(ctx, e, v); err != nil {
			return err
		}
	}
	if err := s.destroyMachine(ctx, v); err != nil {
		s.o.Logger.Error("deleting a pool VM failed; the next upkeep retries", "vm", v.ID, "err", err)
		return err
	}
	if err := s.o.Store.Delete(ctx, e); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	s.o.Logger.Info("pool VM retired", "vm", v.ID, "reason", reason, "leases", v.Leases)
	s.publish(ctx, "retired", v, reason)
	return nil
}

// List is every VM of the pool.
func (s *Service) List(ctx context.Context) ([]VM, error) {
	entries, err := s.o.Store.All(ctx)
	if err != nil {
		return nil, err
	}
	vms := vmsOf(entries)
	s.o.Metrics.observe(s.o.Now(), vms)
	return vms, nil
}

// Drain retires every idle VM now, whatever its billed hour, and puts the
// pool in drain: no idle VM is topped up (--min-idle) and every VM returned
// is retired, until Resume. Leases are still served.
func (s *Service) Drain(ctx context.Context) ([]string, error) {
	if err := s.o.Store.SetDraining(ctx, true); err != nil {
		return nil, err
	}
	s.o.Logger.Info("pool draining: idle VMs retired, none topped up, returned VMs retired (lian-build pool resume ends it)", "pool", s.o.Name)
	s.Wait() // the returns this replica is still settling end idle, then go
	entries, err := s.o.Store.All(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	var errs []error
	for _, e := range entries {
		if e.State != StateIdle {
			continue
		}
		if err := s.retire(ctx, e, "drained"); err != nil {
			if !errors.Is(err, ErrConflict) {
				errs = append(errs, err)
			}
			continue
		}
		out = append(out, e.ID)
	}
	return out, errors.Join(errs...)
}

// Upkeep retires what the policy says (expired leases, stuck VMs, idle VMs
// at the end of their billed hour, VMs left retiring), takes over VMs left
// recycling (resettle), creates idle VMs a
// tier's MinIdle lacks, and reconciles the bucket with the servers.
func (s *Service) Upkeep(ctx context.Context) error {
	entries, err := s.o.Store.All(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range s.o.Policy.Retire(s.o.Now(), vmsOf(entries)) {
		if err := s.retireHandingOff(ctx, find(entries, r.VM.ID), r, entries); err != nil && !errors.Is(err, ErrConflict) {
			errs = append(errs, err)
		}
	}
	for _, v := range s.o.Policy.Unsettled(s.o.Now(), vmsOf(entries)) {
		if err := s.resettle(ctx, find(entries, v.ID)); err != nil && !errors.Is(err, ErrConflict) {
			errs = append(errs, err)
		}
	}
	for _, e := range entries {
		if e.State == StateRetiring && s.o.Now().Sub(e.Since) > time.Minute {
			errs = append(errs, s.retire(ctx, e, "left retiring"))
		}
	}
	draining, err := s.o.Store.Draining(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for arch := range s.o.Clouds {
		if draining {
			break
		}
		for tier, n := range s.o.Policy.Missing(vmsOf(entries), arch) {
			for range n {
				if _, err := s.create(ctx, Request{Tier: tier, Arch: arch}, nil, nil); err != nil {
					errs = append(errs, fmt.Errorf("standby %s VM: %w", tier, err))
				}
			}
		}
	}
	if _, err := s.Reconcile(ctx); err != nil {
		errs = append(errs, err)
	}
	s.o.Metrics.observe(s.o.Now(), vmsOf(entries))
	return errors.Join(errs...)
}

// Reconcile compares the pool's servers (by label) with the bucket, both
// ways: a server no entry names is an orphan (its creator died before
// writing it, or its entry was removed) and is deleted; an entry whose
// server is gone is removed. Live leases are kept. It returns what it
// deleted.
func (s *Service) Reconcile(ctx context.Context) ([]string, error) {
	entries, err := s.o.Store.All(ctx)
	if err != nil {
		return nil, err
	}
	known := map[string]entry{}
	for _, e := range entries {
		known[e.ID] = e
	}
	var out []string
	var errs []error
	for _, cloud := range s.o.Clouds {
		ms, err := cloud.Machines(ctx, LabelPool+"="+s.o.Name)
		if err != nil {
			return out, err
		}
		for _, m := range ms {
			id := m.Labels[LabelVM]
			if _, ok := known[id]; ok {
				delete(known, id)
				continue
			}
			if err := cloud.DeleteMachine(ctx, m.ID); err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, fmt.Sprintf("server %s (id %d): no entry", m.Name, m.ID))
		}
	}
	for _, e := range known {
		if e.ServerID == 0 {
			continue // still being created, or will be found stuck
		}
		if err := s.o.Store.Delete(ctx, e); err != nil && !errors.Is(err, ErrConflict) {
			errs = append(errs, err)
			continue
		}
		out = append(out, fmt.Sprintf("entry %s: its server %d is gone", e.ID, e.ServerID))
	}
	for _, o := range out {
		s.o.Logger.Warn("pool reconciled", "removed", o)
	}
	return out, errors.Join(errs...)
}

// Run does the upkeep every interval until ctx ends; a failed round is
// logged and the next one tries again.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Upkeep(ctx); err != nil && ctx.Err() == nil {
				s.o.Logger.Error("pool upkeep", "err", err)
			}
		}
	}
}

// Resume ends a drain: idle VMs are topped up again and returned VMs kept.
func (s *Service) Resume(ctx context.Context) error {
	if err := s.o.Store.SetDraining(ctx, false); err != nil {
		return err
	}
	s.o.Logger.Info("pool resumed: idle VMs topped up again", "pool", s.o.Name)
	return nil
}

// Status is every VM of the pool and whether it drains.
func (s *Service) Status(ctx context.Context) (Status, error) {
	vms, err := s.List(ctx)
	if err != nil {
		return Status{}, err
	}
	draining, err := s.o.Store.Draining(ctx)
	return Status{Pool: s.o.Name, Draining: draining, VMs: vms}, err
}
