package pool

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/pool/poolapi"
)

// Warm runner state on the pool's VMs: each VM keeps, on its own disk, the
// committed generation of every cache namespace it has served
// (remote.RunnerScript's warm-* commands). A lease that asks for state
// runs its buildkitd on a copy of the best one the VM holds (Pick prefers
// a VM holding the newest); after an ok return that asks for it, the pool
// commits the lease's tree as the write namespace's next generation, then
// recycles the VM, which removes every work tree and never a committed
// generation. Generations are numbered across the pool: the next is one
// past the newest any VM holds.

// heldRank is where v's best namespace for the request stands: the index
// in the read set of the first namespace it holds (len(read): none), and
// when that generation was committed.
func heldRank(v VM, read []string) (int, time.Time) {
	for i, ns := range read {
		if w, ok := v.Warm[ns]; ok {
			return i, w.Committed
		}
	}
	return len(read), time.Time{}
}

// warmer orders two VMs for a request's state: a VM holding an earlier
// namespace of the read set first, then the newer generation of it.
// (0: equal.)
func warmer(a, b VM, req Request) int {
	if req.State == nil {
		return 0
	}
	ia, ta := heldRank(a, req.State.Read)
	ib, tb := heldRank(b, req.State.Read)
	switch {
	case ia != ib:
		return ia - ib
	case ta.After(tb):
		return -1
	case tb.After(ta):
		return 1
	}
	return 0
}

// newest is the newest generation of ns any VM holds (0: none).
func newest(vms []VM, ns string) int {
	n := 0
	for _, v := range vms {
		n = max(n, v.Warm[ns].Generation)
	}
	return n
}

// warmOpen lets the lease's key in with its buildkitd started on the state
// it asked for: a copy of the best namespace v holds, or an empty tree that
// a commit can keep. It records what it opened in the lease.
func (s *Service) warmOpen(ctx context.Context, v VM, key ssh.PublicKey, vms []VM) (*GrantState, error) {
	st := v.Lease.State
	ns, label := heldNamespace(v, st.Read), ""
	if ns != "" {
		label = poolapi.WarmDir(ns)
	}
	start := s.o.Now()
	var g remote.Generation
	_, err := s.onMachine(ctx, v, func(c *sshx.Conn) (err error) {
		g, err = remote.GrantWarm(ctx, c, s.o.Signer.PublicKey(), key, label, v.Lease.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if g.N == 0 {
		ns = ""
	}
	return s.opened(v, vms, GrantState{Namespace: ns, Generation: g.N, Bytes: g.Bytes, OpenMS: s.o.Now().Sub(start).Milliseconds()}), nil
}

// opened records in v's lease what its buildkitd started on, and the
// generation its commit will make; it counts the warm lease.
func (s *Service) opened(v VM, vms []VM, gs GrantState) *GrantState {
	st := v.Lease.State
	st.Opened, st.Generation = gs.Namespace, gs.Generation
	if st.Write != "" {
		st.Next = newest(vms, st.Write) + 1
	}
	gs.Next = st.Next
	s.o.Metrics.warmLease(v.Tier, gs.Namespace != "")
	return &gs
}

// heldNamespace is the first namespace of read that v holds ("": none).
func heldNamespace(v VM, read []string) string {
	if i, _ := heldRank(v, read); i < len(read) {
		return read[i]
	}
	return ""
}

// warmCommit makes a returned lease's tree its write namespace's next
// generation on the VM, and records it in v. A lease that asked for no
// commit, or none allowed, leaves its tree to the recycle.
func (s *Service) warmCommit(ctx context.Context, v *VM, lease Lease, ret Return, vms []VM) error {
	st := lease.State
	if st == nil || st.Write == "" || !ret.Commit || ret.Outcome != "ok" {
		return nil
	}
	gen := max(st.Next, newest(vms, st.Write)+1)
	var g remote.Generation
	_, err := s.onMachine(ctx, *v, func(c *sshx.Conn) error {
		out, err := remote.RunScript(ctx, c, "warm-commit", poolapi.WarmDir(st.Write), cmp.Or(st.Tree, lease.ID), strconv.Itoa(gen))
		if err == nil {
			g, err = remote.ParseGeneration("warm-commit", out)
		}
		return err
	})
	s.o.Metrics.warmCommit(v.Tier, err)
	if err != nil {
		return fmt.Errorf("committing %s generation %d: %w", st.Write, gen, err)
	}
	if v.Warm == nil {
		v.Warm = map[string]Warm{}
	}
	v.Warm[st.Write] = Warm{Generation: g.N, Committed: s.o.Now(), Bytes: g.Bytes}
	s.o.Logger.Info("warm state committed", "vm", v.ID, "namespace", st.Write, "generation", g.N, "bytes", g.Bytes, "lease", lease.ID)
	return nil
}

// warmBudget is how much committed state v may keep (0: no bound).
func (p Policy) warmBudget(v VM) int64 {
	if p.WarmBytes > 0 {
		return p.WarmBytes
	}
	return int64(v.DiskGB) * 1e9 / 2
}

// Evict names the namespaces whose generations v drops to fit its budget:
// those committed longest ago first, never the newest (a namespace larger
// than the budget alone is kept; the next commit of another drops it).
func (p Policy) Evict(v VM) []string {
	budget := p.warmBudget(v)
	if budget <= 0 || len(v.Warm) < 2 {
		return nil
	}
	var total int64
	byAge := make([]string, 0, len(v.Warm))
	for ns, w := range v.Warm {
		total += w.Bytes
		byAge = append(byAge, ns)
	}
	slices.SortFunc(byAge, func(a, b string) int {
		return cmp.Or(v.Warm[a].Committed.Compare(v.Warm[b].Committed), strings.Compare(a, b))
	})
	var out []string
	for _, ns := range byAge[:len(byAge)-1] {
		if total <= budget {
			break
		}
		total -= v.Warm[ns].Bytes
		out = append(out, ns)
	}
	return out
}

// warmEvict drops from v's disk the generations its policy evicts.
func (s *Service) warmEvict(ctx context.Context, v *VM) error {
	drop := s.o.Policy.Evict(*v)
	if len(drop) == 0 {
		return nil
	}
	_, err := s.onMachine(ctx, *v, func(c *sshx.Conn) error {
		for _, ns := range drop {
			if _, err := remote.RunScript(ctx, c, "warm-drop", poolapi.WarmDir(ns)); err != nil {
				return err
			}
			s.o.Logger.Info("warm state evicted", "vm", v.ID, "namespace", ns, "generation", v.Warm[ns].Generation, "bytes", v.Warm[ns].Bytes)
			delete(v.Warm, ns)
			s.o.Metrics.warmEvicted(v.Tier)
		}
		return nil
	})
	return err
}

// parseWarmList reads warm-list's answer: each namespace's committed
// generation on the VM's disk. A generation the entry already records
// keeps its commit time; one it does not (committed by a settler that
// died before it wrote it down) counts from now.
func parseWarmList(out string, now time.Time, known map[string]Warm) (map[string]Warm, error) {
	held := map[string]Warm{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		g, err := remote.ParseGeneration("warm-list", strings.Join(f[1:], " "))
		if err != nil || len(f) != 5 {
			return nil, fmt.Errorf("warm-list said %q", strings.TrimSpace(line))
		}
		ns := poolapi.WarmNamespace(f[0])
		w := Warm{Generation: g.N, Committed: now, Bytes: g.Bytes}
		if k, ok := known[ns]; ok && k.Generation == g.N {
			w.Committed = k.Committed
		}
		held[ns] = w
	}
	return held, nil
}

// resettle takes over a VM whose return no one settled (Policy.Unsettled):
// it claims it, reads back the warm state on its disk — a commit its
// settler finished counts, a half one is not there (commit_tree) — and
// recycles it idle. A VM that cannot be is retired.
func (s *Service) resettle(ctx context.Context, e entry) error {
	v := e.VM
	v.Since = s.o.Now()
	e, err := s.o.Store.Update(ctx, e, v)
	if err != nil {
		return err
	}
	var held map[string]Warm
	_, err = s.onMachine(ctx, v, func(c *sshx.Conn) error {
		out, err := remote.RunScript(ctx, c, "warm-list")
		if err == nil {
			held, err = parseWarmList(out, s.o.Now(), v.Warm)
		}
		return err
	})
	if err == nil {
		v.Warm = held
		_, err = s.makeReady(ctx, &v, nil)
	}
	if err != nil {
		return s.retire(ctx, e, "left recycling, and not recycled again: "+err.Error())
	}
	v.State, v.Since = StateIdle, s.o.Now()
	if _, err := s.o.Store.Update(ctx, e, v); err != nil {
		return err
	}
	s.o.Logger.Info("pool VM left recycling taken over", "vm", v.ID, "warm", fmt.Sprint(held))
	return nil
}
