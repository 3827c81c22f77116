// Package compute spawns and destroys BuildKit runners.
//
// A Provider turns a tier and a lease into a Runner; a Runner hands out a
// BuildKit client, reports resource use and is destroyed, always, by the
// pipeline. Providers label what they create as lian-build's so that an orphan
// reaper can find it after a crash. Providers are built by the factories
// registered here (one package per provider, as buildx's drivers); nobody
// outside a provider's package knows its concrete type.
package compute

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lian-build/action/internal/sizing"
	"github.com/moby/buildkit/client"
)

// Lease names one runner: an id, who owns it, until when, and labels.
type Lease struct {
	ID string
	// BuildID is the build the lease serves (its labels carry it too).
	BuildID string
	// Owner says who spawned the runner, in a form every provider can store
	// as a label value (letters, digits, '-', '_', '.'): e.g. "pid-4242-17321".
	Owner string
	// TTL is how long the runner may outlive a crashed owner.
	TTL    time.Duration
	Labels map[string]string
	// State is a directory to run buildkitd on as its root: a clone of a
	// committed BuildKit state (internal/state). "" gives the runner a fresh
	// root of its own. The runner never removes it; a provider that cannot
	// use it refuses the lease.
	State string
	// Expected is how long the build is expected to take (its workspace's
	// P95; 0 unknown): a pool reuses a machine only if its paid time holds it.
	Expected time.Duration
	// RemoteState asks for state the provider keeps (nil: none); a provider
	// that keeps none refuses the lease.
	RemoteState *StateSpec
}

// Expires is the end of the lease, counted from now.
func (l Lease) Expires(now time.Time) time.Time { return now.Add(l.TTL) }

// LabelSet is every label a provider puts on what it creates for the lease:
// the lease's own labels plus lease id, owner and expiry. The expiry is in
// unix seconds: some clouds' label values allow no ':'.
func (l Lease) LabelSet(now time.Time) map[string]string {
	out := map[string]string{LabelLease: l.ID, LabelExpires: strconv.FormatInt(l.Expires(now).Unix(), 10)}
	if l.Owner != "" {
		out[LabelOwner] = l.Owner
	}
	for k, v := range l.Labels {
		out[k] = SafeLabel(v)
	}
	return out
}

// ParseExpires reads a LabelExpires value (unix seconds).
func ParseExpires(v string) (time.Time, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// Stats is a point-in-time reading of a runner's resource use.
type Stats struct {
	Time          time.Time
	MemoryBytes   uint64 // current usage of the build's containers
	MemoryPeak    uint64 // high-water mark since spawn
	IntervalPeak  uint64 // high-water mark since the previous reading (0: unknown)
	CPUUsageNanos uint64 // cumulative CPU time of the build's containers
	OOMKills      uint64 // cumulative count of processes the kernel killed for memory
}

// SpawnTimes split a spawn: the machine created, booted, and buildkitd ready.
type SpawnTimes struct {
	CreateMS int64 `json:"create_ms"`
	BootMS   int64 `json:"boot_ms"`
	ReadyMS  int64 `json:"ready_ms"`
}

// RunnerInfo describes a runner: for the report, and for `runners ls|gc`.
type RunnerInfo struct {
	ID       string     `json:"id"`
	Provider string     `json:"provider"`
	Tier     string     `json:"tier,omitempty"`
	Server   string     `json:"server,omitempty"`   // the machine: a server name and id, a host, a process
	Type     string     `json:"type,omitempty"`     // the machine type (a Hetzner server type, a cgroup limit)
	Location string     `json:"location,omitempty"` // where it runs
	Address  string     `json:"address,omitempty"`  // how it is reached
	Owner    string     `json:"owner,omitempty"`
	Created  time.Time  `json:"created,omitzero"`
	Expires  time.Time  `json:"expires,omitzero"`
	Spawn    SpawnTimes `json:"spawn,omitzero"`
	// Kernel and CgroupVersion are what the machine runs (1 or 2; 0:
	// not known), found when it became ready.
	Kernel        string `json:"kernel,omitempty"`
	CgroupVersion int    `json:"cgroup_version,omitempty"`
	// Price is what the machine costs, when the provider knows (a cloud's
	// list price in its location).
	Price  *Price `json:"price,omitempty"`
	Orphan bool   `json:"orphan,omitempty"`
	Why    string `json:"why,omitempty"` // why it is an orphan
	// Pool names the VM pool that keeps the machine across leases: not a
	// lease's runner, never reaped by gc (its pool reconciles it).
	Pool string `json:"pool,omitempty"`
}

// Price is a machine's price and how it is billed.
type Price struct {
	HourlyEUR float64 `json:"hourly_eur"` // net
	// Billing: BilledHours, every started hour of the machine's life is
	// paid (a server made for the build); ShareOfHour, the machine serves
	// many leases and a lease pays its share of the hour (a pool's VM).
	Billing Billing `json:"billing"`
}

// Billing is how a machine's price becomes a build's cost.
type Billing string

const (
	BilledHours Billing = "started-hours"
	ShareOfHour Billing = "share-of-hour"
)

// Cost is what using the machine for d costs: every started hour for a
// machine made for the build (at least one), the share of an hour for a
// shared one.
func (p Price) Cost(d time.Duration) float64 {
	if p.Billing == ShareOfHour {
		return p.HourlyEUR * d.Hours()
	}
	return p.HourlyEUR * math.Max(1, math.Ceil(d.Hours()))
}

// Runner is one spawned BuildKit daemon.
type Runner interface {
	// Info describes the runner.
	Info() RunnerInfo
	// Client connects to the runner's buildkitd. The caller closes it.
	Client(ctx context.Context) (*client.Client, error)
	// Stats reads the runner's resource counters.
	Stats(ctx context.Context) (Stats, error)
	// Health says whether the runner is still there and reachable: nil, or
	// what is wrong (its daemon died, the connection to it was lost).
	Health(ctx context.Context) error
	// Destroy stops the runner and removes everything it owned. It is safe to call twice.
	Destroy(ctx context.Context) error
}

// Provider creates runners of a given tier, and finds and reaps its own.
type Provider interface {
	Name() string
	Tiers() sizing.Table
	Spawn(ctx context.Context, tier sizing.Tier, lease Lease) (Runner, error)
	// List returns every runner of this provider that exists, orphans marked.
	List(ctx context.Context) ([]RunnerInfo, error)
	// GC destroys the orphans (owner gone, lease expired, record unreadable)
	// and returns what it removed; a failed removal is an error, never dropped.
	GC(ctx context.Context) ([]RunnerInfo, error)
	// Note is advice about the provider's setup ("" when there is none).
	Note() string
}

// Label keys put on everything a provider creates.
const (
	LabelLease     = "lian-build/lease"
	LabelExpires   = "lian-build/expires" // unix seconds
	LabelOwner     = "lian-build/owner"
	LabelWorkspace = "lian-build/workspace"
	// LabelBuild is the build a machine serves.
	LabelBuild = "lian-build/build"
	// LabelTier is the tier a machine was made for.
	LabelTier = "lian-build/tier"
	// LabelPool and LabelPoolVM mark a VM pool's servers: the pool's name
	// and the VM's; they carry no lease label (gc leaves them alone).
	LabelPool   = "lian-build/pool"
	LabelPoolVM = "lian-build/pool-vm"
	// LabelActorClass is the actor's class (ci, ci_aux, human, agent): a
	// pool keeps ci and session builds apart by it.
	LabelActorClass = "lian-build/actor-class"
)

// Owner names this process as a lease owner, "<host>-pid-<pid>" in label
// characters; LocalOwnerPID reads such a label back.
func Owner() string {
	return SafeLabel(fmt.Sprintf("%s-pid-%d", hostLabel(), os.Getpid()))
}

// LocalOwnerPID is the pid of an owner label written on this machine.
func LocalOwnerPID(owner string) (int, bool) {
	host, pidText, ok := strings.Cut(owner, "-pid-")
	if !ok || host != hostLabel() {
		return 0, false
	}
	pid, err := strconv.Atoi(pidText)
	return pid, err == nil
}

func hostLabel() string {
	h, _ := os.Hostname()
	return SafeLabel(h)
}

// SafeLabel keeps a label value to the characters every provider's labels
// allow (letters, digits, '-', '_', '.'), at most 63.
func SafeLabel(v string) string {
	b := []byte(v)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	if len(b) > MaxLabel {
		// Shortened deterministically, a hash of the whole value at the end:
		// two long names that share a prefix keep distinct labels.
		sum := sha256.Sum256([]byte(v))
		b = append(b[:MaxLabel-9], '-')
		b = append(b, hex.EncodeToString(sum[:4])...)
	}
	return string(b)
}

// MaxLabel is the longest label value clouds accept (Hetzner: 63).
const MaxLabel = 63

// StateAdmin is a provider that keeps runner state outside this machine
// (hcloud's volumes): `lian-build state ls|rm` list and remove it there.
type StateAdmin interface {
	States(ctx context.Context) ([]StateInfo, error)
	RemoveState(ctx context.Context, namespace string) error
}

// StateInfo is one namespace's state where a provider keeps it.
type StateInfo struct {
	Namespace string
	Where     string // a volume and its location
	Bytes     int64
	Created   time.Time
	InUse     string // "" when no build holds it
}

// Outcome is how the build on a runner ended, for runners whose machine may
// serve again (a pool's): only OutcomeOK lets it.
type Outcome string

const (
	OutcomeOK    Outcome = "ok"
	OutcomeOOM   Outcome = "oom"
	OutcomeError Outcome = "error" // a failed, cancelled or timed-out build
)

// ContextStreamer is a runner whose buildkitd can fetch the build context
// from this process as plain HTTP streams (buildkit.Options.ContextStream):
// a listener on the runner's loopback whose connections reach here, an SSH
// remote forward (a channel per connection). A runner that cannot give one this time (its sshd
// forwards nothing) returns an error, and the context goes through the
// session.
type ContextStreamer interface {
	ListenOnRunner(ctx context.Context) (net.Listener, error)
}

// Baseliner is a runner whose counters were read as it became ready,
// before any build ran on it: a build's baseline (what its OOM kills are
// counted from) without a reading of its own, a round trip on a remote
// machine.
type Baseliner interface {
	Baseline() (Stats, bool)
}

// OutcomeSetter is implemented by runners that hand their machine back
// rather than delete it: the pipeline tells them the outcome before
// Destroy. A runner never told assumes OutcomeError.
type OutcomeSetter interface {
	SetOutcome(Outcome)
}

// Orphaned is a reaper's decision from a runner's labels alone: the lease
// expired, its expiry is unreadable, or its owner was a process on this
// machine that is gone.
func Orphaned(labels map[string]string, now time.Time) (bool, string) {
	exp, ok := ParseExpires(labels[LabelExpires])
	switch {
	case !ok:
		return true, "no readable expiry label"
	case now.After(exp):
		return true, "lease expired at " + exp.UTC().Format(time.RFC3339)
	}
	if owner := labels[LabelOwner]; owner != "" {
		if pid, here := LocalOwnerPID(owner); here {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				return true, "owner " + owner + " is gone"
			}
		}
	}
	return false, ""
}

// StateSpec asks a provider for runner state it keeps itself (a Hetzner
// Volume per cache namespace): the namespaces the build may start from,
// best first, and the one a clean success commits to ("": none).
type StateSpec struct {
	Read  []string
	Write string
}

// StateOpened is what a runner on provider-kept state started from.
type StateOpened struct {
	Namespace  string // "": no state (a first build, or none could be had)
	Generation int
	Bytes      int64
	OpenMS     int64
	// Note says why the runner has no state when it asked for one (the
	// namespace's volume is attached to another build's server).
	Note string
	// Committable: the runner's state can be committed (it has its volume).
	Committable bool
}

// StatefulRunner is a runner on provider-kept state (Lease.RemoteState).
type StatefulRunner interface {
	StateOpened() StateOpened
	// CommitState stops buildkitd cleanly and makes its state the write
	// namespace's next generation, atomically; it returns that generation.
	CommitState(ctx context.Context) (int, error)
}

// RefuseState is what a provider that keeps no runner state says to a
// lease asking for some (a state store's clone, or provider-kept state);
// nil when the lease asks for none.
func RefuseState(provider string, l Lease) error {
	switch {
	case l.RemoteState != nil:
		return fmt.Errorf("%s keeps no runner state of its own (providers that do: %s)", provider, strings.Join(WithFeature(func(f Features) bool { return f.RemoteState }), ", "))
	case l.State != "":
		return fmt.Errorf("%s cannot start a runner from a state store on this machine (providers that can: %s)", provider, strings.Join(WithFeature(func(f Features) bool { return f.LocalState }), ", "))
	}
	return nil
}

// ImageMaker is a provider that can make its own runner image (a snapshot
// with buildkitd installed, which its runners then boot).
type ImageMaker interface {
	MakeImage(ctx context.Context) (Image, error)
}

// Image is a runner image a provider made.
type Image struct {
	ID          string
	Description string
	Labels      map[string]string
}
