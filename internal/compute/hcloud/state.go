package hcloud

import (
	"context"
	"fmt"
	"strings"
	"time"

	hc "github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/remote"
)

// Runner state on Hetzner: one Volume per cache namespace and location,
// formatted XFS (reflink copies), attached to the server at creation and
// mounted by Hetzner's automount at /mnt/HC_Volume_<id>. The runner script
// (remote.RunnerScript) copies the committed generation for the lease,
// restarts buildkitd on the copy, and commits or discards it. A volume
// attaches to one server at a time: a concurrent build of the namespace
// gets none and runs on the registry cache, and says so.

// LabelState is the label of a state volume: its namespace, '/' as '.'.
const LabelState = "lian-build/state"

// stateLabel is a namespace as a label value.
func stateLabel(ns string) string { return compute.SafeLabel(strings.ReplaceAll(ns, "/", ".")) }

// volumeState is the runner's state volume, once chosen.
type volumeState struct {
	vol       *hc.Volume
	namespace string // the volume's (the write namespace, or the read one for ci_aux)
	write     bool
	opened    compute.StateOpened
	committed bool
}

func (s *volumeState) mount() string { return fmt.Sprintf("/mnt/HC_Volume_%d", s.vol.ID) }

// chooseVolume finds (or, for a namespace the build writes, creates) the
// state volume: it says why there is none when there is none.
func (r *runner) chooseVolume(ctx context.Context, spec *compute.StateSpec) (*volumeState, error) {
	ns, write := spec.Write, spec.Write != ""
	if !write {
		ns = spec.Read[0]
	}
	vols, err := r.p.c.Volume.AllWithOpts(ctx, hc.VolumeListOpts{ListOpts: hc.ListOpts{LabelSelector: LabelState + "=" + stateLabel(ns)}})
	if err != nil {
		return nil, fmt.Errorf("hcloud: list state volumes: %w", err)
	}
	st := &volumeState{namespace: ns, write: write}
	for _, v := range vols {
		if v.Server == nil {
			st.vol = v
			return st, nil
		}
	}
	if len(vols) > 0 {
		st.opened.Note = fmt.Sprintf("the state volume of %s is attached to another build's server (%d): registry cache only", ns, vols[0].Server.ID)
		return st, nil
	}
	if !write {
		st.opened.Note = "no state volume for " + ns + " yet"
		return st, nil
	}
	if len(spec.Read) > 1 && spec.Read[0] == ns {
		st.opened.Note = "first build of " + ns + ": a new volume (a volume is not cloned from another namespace's)"
	}
	res, _, err := r.p.c.Volume.Create(ctx, hc.VolumeCreateOpts{Name: "lb-state-" + stateLabel(ns) + "-" + r.p.s.Locations[0], Size: r.p.volumeGB(),
		Location: &hc.Location{Name: r.p.s.Locations[0]}, Format: hc.Ptr("xfs"), Labels: map[string]string{LabelState: stateLabel(ns)}})
	if err != nil {
		return nil, fmt.Errorf("hcloud: create the state volume of %s: %w", ns, err)
	}
	if err := r.p.c.Action.WaitFor(ctx, append(res.NextActions, res.Action)...); err != nil {
		return nil, fmt.Errorf("hcloud: state volume of %s: %w", ns, err)
	}
	st.vol = res.Volume
	return st, nil
}

// volumeGB is a state volume's size (Hetzner's minimum is 10 GB).
func (p *Provider) volumeGB() int { return max(p.s.VolumeGB, 10) }

// openState copies the volume's committed generation for the lease and
// restarts buildkitd on it.
func (r *runner) openState(ctx context.Context) error {
	st := r.state
	start := time.Now()
	out, err := remote.RunScript(ctx, r.SSH, "state-open", st.mount(), r.lease.ID)
	if err != nil {
		return err
	}
	g, err := remote.ParseGeneration("hcloud: state-open", out)
	if err != nil {
		return err
	}
	st.opened.OpenMS = time.Since(start).Milliseconds()
	st.opened.Generation, st.opened.Bytes, st.opened.Committable = g.N, g.Bytes, st.write
	if g.N > 0 {
		st.opened.Namespace = st.namespace
	}
	return nil
}

// StateOpened is what the runner started from.
func (r *runner) StateOpened() compute.StateOpened {
	if r.state == nil {
		return compute.StateOpened{}
	}
	return r.state.opened
}

// CommitState stops buildkitd and makes its state the namespace's next generation.
func (r *runner) CommitState(ctx context.Context) (int, error) {
	st := r.state
	if st == nil || st.vol == nil || !st.write {
		return 0, fmt.Errorf("hcloud: no state volume to commit to")
	}
	out, err := remote.RunScript(ctx, r.SSH, "state-commit", st.mount(), r.lease.ID)
	if err != nil {
		return 0, err
	}
	g, err := remote.ParseGeneration("hcloud: state-commit", out)
	if err != nil {
		return 0, err
	}
	st.committed = true
	return g.N, nil
}

// discardState removes the lease's copy from the volume before the server
// goes (a lost server's copy is removed by the next state-open).
func (r *runner) discardState(ctx context.Context) {
	st := r.state
	if st == nil || st.vol == nil || st.committed || r.SSH == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, _ = remote.RunScript(ctx, r.SSH, "state-discard", st.mount(), r.lease.ID)
}

// States lists the state volumes (`lian-build state ls --state-store
// volumes`): one per namespace and location.
func (p *Provider) States(ctx context.Context) ([]compute.StateInfo, error) {
	vols, err := p.c.Volume.AllWithOpts(ctx, hc.VolumeListOpts{ListOpts: hc.ListOpts{LabelSelector: LabelState}})
	if err != nil {
		return nil, fmt.Errorf("hcloud: list state volumes: %w", err)
	}
	out := make([]compute.StateInfo, 0, len(vols))
	for _, v := range vols {
		i := compute.StateInfo{Namespace: strings.Replace(v.Labels[LabelState], ".", "/", 1), Where: fmt.Sprintf("volume %s (id %d)", v.Name, v.ID),
			Bytes: int64(v.Size) << 30, Created: v.Created}
		if v.Location != nil {
			i.Where += " in " + v.Location.Name
		}
		if v.Server != nil {
			i.InUse = fmt.Sprintf("attached to server %d", v.Server.ID)
		}
		out = append(out, i)
	}
	return out, nil
}

// RemoveState deletes a namespace's state volumes (every location); one
// attached to a server (a build runs on it) is refused.
func (p *Provider) RemoveState(ctx context.Context, ns string) error {
	vols, err := p.c.Volume.AllWithOpts(ctx, hc.VolumeListOpts{ListOpts: hc.ListOpts{LabelSelector: LabelState + "=" + stateLabel(ns)}})
	if err != nil {
		return fmt.Errorf("hcloud: list state volumes: %w", err)
	}
	if len(vols) == 0 {
		return fmt.Errorf("hcloud: no state volume of %s", ns)
	}
	for _, v := range vols {
		if v.Server != nil {
			return fmt.Errorf("hcloud: the state volume of %s (%d) is attached to server %d: a build uses it; remove it when the build ends", ns, v.ID, v.Server.ID)
		}
	}
	for _, v := range vols {
		if _, err := p.c.Volume.Delete(ctx, v); err != nil {
			return fmt.Errorf("hcloud: delete the state volume of %s (%d): %w", ns, v.ID, err)
		}
	}
	return nil
}
