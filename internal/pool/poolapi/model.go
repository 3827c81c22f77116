// Package poolapi is the VM pool's wire model and its client: what a
// lease asks for and gets, how it ends, the errors the API answers with.
// It is all a pool's client (compute/vmpool, the CLI) needs: the service,
// its store and its policy stay in internal/pool.
package poolapi

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/sizing"
)

// State is where a VM is in its life.
type State string

const (
	// StateCreating: the server is being made (for a lease, or to stand idle).
	StateCreating State = "creating"
	// StateIdle: recycled, waiting for a lease.
	StateIdle State = "idle"
	// StateLeased: a build holds it.
	StateLeased State = "leased"
	// StateRecycling: returned clean; being made fit for the next lease.
	StateRecycling State = "recycling"
	// StateRetiring: being destroyed.
	StateRetiring State = "retiring"
)

// VM is one server of the pool, as the KV bucket holds it.
type VM struct {
	ID       string `json:"id"` // the pool's name for it, also the server's name
	ServerID int64  `json:"server_id,omitempty"`
	Tier     string `json:"tier"`
	Arch     string `json:"arch"`
	Type     string `json:"type,omitempty"`
	Location string `json:"location,omitempty"`
	// HourlyEUR is its server's net list price per hour (0: unknown).
	HourlyEUR float64 `json:"hourly_eur,omitempty"`
	// DiskGB is its server's local disk (0: unknown).
	DiskGB  int    `json:"disk_gb,omitempty"`
	Addr    string `json:"addr,omitempty"`     // sshd, host:22
	HostKey string `json:"host_key,omitempty"` // pinned at first contact (authorized_keys format)
	State   State  `json:"state"`
	// Since is when the VM entered its state.
	Since time.Time `json:"since"`
	// Created is when its server was created: billing counts from here.
	Created time.Time `json:"created"`
	// Group is the class group it serves when classes are kept apart.
	Group  string `json:"group,omitempty"`
	Leases int    `json:"leases"` // leases served
	Lease  *Lease `json:"lease,omitempty"`
	// Warm are the committed generations of runner state on its disk, by
	// cache namespace.
	Warm map[string]Warm `json:"warm,omitempty"`
	// Kernel and CgroupVersion are its machine's, read at a return.
	Kernel        string `json:"kernel,omitempty"`
	CgroupVersion int    `json:"cgroup_version,omitempty"`
	// Ready is what its last recycle made it ready for (nil: a lease is
	// granted over SSH).
	Ready *Ready `json:"ready,omitempty"`
}

// Ready is an idle VM made ready for its likely next lease: buildkitd
// already runs on what that lease would ask for, and (with a KeyNonce) that
// lease's key is already let in. A lease that wants it takes the VM with
// no SSH on its path.
type Ready struct {
	// Tree is the work tree buildkitd runs on ("": an empty root, for a
	// lease that asks for no state).
	Tree string `json:"tree,omitempty"`
	// Namespace and Generation are what the tree is a copy of ("": none).
	Namespace  string `json:"namespace,omitempty"`
	Generation int    `json:"generation,omitempty"`
	Bytes      int64  `json:"bytes,omitempty"`
	// OpenMS is how long opening it took, off any lease's time.
	OpenMS int64 `json:"open_ms,omitempty"`
	// KeyNonce names the lease key let in: the pool derives it from its own
	// key and this nonce; neither the key nor its private half is stored.
	KeyNonce string `json:"key_nonce,omitempty"`
}

// Warm is one namespace's committed generation on a VM's disk.
type Warm struct {
	Generation int       `json:"generation"`
	Committed  time.Time `json:"committed"`
	Bytes      int64     `json:"bytes,omitempty"`
}

// Lease is one build's hold on a VM.
type Lease struct {
	ID        string        `json:"id"`
	Class     string        `json:"class,omitempty"`
	Workspace string        `json:"workspace,omitempty"`
	Build     string        `json:"build,omitempty"`
	Expected  time.Duration `json:"expected,omitempty"`
	Started   time.Time     `json:"started"`
	Expires   time.Time     `json:"expires"`
	// Key is the SHA256 fingerprint of the lease's own SSH key (its private
	// half went to the holder only).
	Key string `json:"key"`
	// State is the runner state the lease runs on and may commit.
	State *LeaseState `json:"state,omitempty"`
	// Request is the request id it was granted for ("": none given).
	Request string `json:"request,omitempty"`
}

// LeaseState is the warm state of a lease: what it asked for, what it
// started from, and the generation a commit will make.
type LeaseState struct {
	StateRequest
	Opened     string `json:"opened,omitempty"` // the namespace it started from ("": none)
	Generation int    `json:"generation,omitempty"`
	Next       int    `json:"next,omitempty"`
	// Tree is its work tree on the VM (default: the lease's id).
	Tree string `json:"tree,omitempty"`
}

// Request is what a lease asks for.
type Request struct {
	Tier      string `json:"tier"`
	Arch      string `json:"arch,omitempty"`     // arm (default) or x86
	Location  string `json:"location,omitempty"` // "" any
	Workspace string `json:"workspace,omitempty"`
	Class     string `json:"actor_class,omitempty"` // ci, ci_aux, human, agent
	Build     string `json:"build_id,omitempty"`
	// ExpectedSeconds is how long the build is expected to take (its P95
	// duration; 0: the pool's default).
	ExpectedSeconds int64 `json:"expected_seconds,omitempty"`
	// TTLSeconds is how long the lease may last (default 1 h, at most MaxTTL).
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
	// State asks for warm runner state (nil: a fresh buildkitd).
	State *StateRequest `json:"state,omitempty"`
	// RequestID names this request across its tries: a client that asks
	// again on another replica, after one broke off without answering,
	// sends the same id, and the pool takes back a lease an earlier try was
	// granted (Client.Lease sets one).
	RequestID string `json:"request_id,omitempty"`
}

// StateRequest is the runner state a lease may start from and commit to
// (cache.StateNamespaces): the namespaces it may read, best first, and the
// one a clean success commits to ("": none).
type StateRequest struct {
	Read  []string `json:"read"`
	Write string   `json:"write,omitempty"`
}

var namespaceRE = regexp.MustCompile(`^(ci|dev)/[A-Za-z0-9._-]{1,128}$`)

// check refuses a namespace that is not a cache namespace, and a session
// that would write ci/* state.
func (s *StateRequest) check(class string) error {
	if len(s.Read) == 0 || len(s.Read) > 4 {
		return &RequestError{Field: "state.read", Msg: fmt.Sprintf("%d namespaces: want 1 to 4", len(s.Read))}
	}
	for _, ns := range append(slices.Clone(s.Read), s.Write) {
		if ns != "" && !namespaceRE.MatchString(ns) {
			return &RequestError{Field: "state", Msg: fmt.Sprintf("%s: not a cache namespace (ci/NAME or dev/NAME)", Quote(ns))}
		}
	}
	if s.Write != "" && class != "ci" && !strings.HasPrefix(s.Write, "dev/") {
		return &RequestError{Field: "state.write", Msg: fmt.Sprintf("%s: a %s lease writes dev/* state only", Quote(s.Write), class)}
	}
	return nil
}

// WarmDir is a namespace's directory name on a VM's disk ("ci/app" →
// "ci_app": the prefix has no '_', so the name is unique).
func WarmDir(ns string) string { return strings.Replace(ns, "/", "_", 1) }

// WarmNamespace is the namespace a WarmDir names.
func WarmNamespace(dir string) string { return strings.Replace(dir, "_", "/", 1) }

// Expected is how long the build is expected to take.
func (r Request) Expected() time.Duration { return time.Duration(r.ExpectedSeconds) * time.Second }

// TTL is how long the lease may last.
func (r Request) TTL() time.Duration { return time.Duration(r.TTLSeconds) * time.Second }

// Classes are the actor classes a request may name.
var Classes = []string{"ci", "ci_aux", "human", "agent"}

// MaxTTL bounds a lease's life; a holder that vanishes is reclaimed after it.
const MaxTTL = 6 * time.Hour

// MaxExpected bounds a request's expected duration (a build longer than a
// lease's longest life cannot be planned for).
const MaxExpected = MaxTTL

// Normalize fills defaults and checks the request; the error names the field.
// Durations are compared in seconds before they become time.Durations, so
// that no value overflows past a check.
func (r *Request) Normalize() error {
	if _, err := sizing.HCloud.Lookup(r.Tier); err != nil {
		return &RequestError{Field: "tier", Msg: err.Error()}
	}
	switch r.Arch {
	case "":
		r.Arch = "arm"
	case "arm", "x86":
	default:
		return &RequestError{Field: "arch", Msg: fmt.Sprintf("%s: want arm or x86", Quote(r.Arch))}
	}
	if r.Class == "" {
		r.Class = "ci"
	}
	if !slices.Contains(Classes, r.Class) {
		return &RequestError{Field: "actor_class", Msg: fmt.Sprintf("%s: want one of %v", Quote(r.Class), Classes)}
	}
	if r.Workspace != "" {
		if rule := cache.NameRule(r.Workspace); rule != "" {
			return &RequestError{Field: "workspace", Msg: fmt.Sprintf("%s: %s", Quote(r.Workspace), rule)}
		}
	}
	if r.Build != "" && !buildIDRE.MatchString(r.Build) {
		return &RequestError{Field: "build_id", Msg: fmt.Sprintf("%s: want at most 128 letters, digits, '.', '_' or '-'", Quote(r.Build))}
	}
	if r.RequestID != "" && !buildIDRE.MatchString(r.RequestID) {
		return &RequestError{Field: "request_id", Msg: fmt.Sprintf("%s: want at most 128 letters, digits, '.', '_' or '-'", Quote(r.RequestID))}
	}
	if r.Location != "" && !locationRE.MatchString(r.Location) {
		return &RequestError{Field: "location", Msg: fmt.Sprintf("%s: not a location name (fsn1, nbg1, hel1, …)", Quote(r.Location))}
	}
	maxTTL := int64(MaxTTL / time.Second)
	switch {
	case r.TTLSeconds < 0:
		return &RequestError{Field: "ttl_seconds", Msg: fmt.Sprintf("%d: may not be negative (0 or absent: 1 h)", r.TTLSeconds)}
	case r.TTLSeconds == 0:
		r.TTLSeconds = int64(time.Hour / time.Second)
	case r.TTLSeconds > maxTTL:
		return &RequestError{Field: "ttl_seconds", Msg: fmt.Sprintf("%d: at most %d (%s)", r.TTLSeconds, maxTTL, MaxTTL)}
	}
	if r.ExpectedSeconds < 0 || r.ExpectedSeconds > int64(MaxExpected/time.Second) {
		return &RequestError{Field: "expected_seconds", Msg: fmt.Sprintf("%d: want 0 to %d (0: the pool's default)", r.ExpectedSeconds, int64(MaxExpected/time.Second))}
	}
	if r.State != nil {
		return r.State.check(r.Class)
	}
	return nil
}

var (
	buildIDRE  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	locationRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,31}$`)
)

// Quote quotes a value for a message: control characters escaped, long
// values cut.
func Quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

// RequestError is a bad lease request: the field and what is wrong.
type RequestError struct{ Field, Msg string }

func (e *RequestError) Error() string { return e.Field + ": " + e.Msg }

// Grant is a lease handed out: where the runner is and how to reach it.
type Grant struct {
	LeaseID  string `json:"lease_id"`
	VM       string `json:"vm"`
	ServerID int64  `json:"server_id"`
	Tier     string `json:"tier"`
	Type     string `json:"type"`
	Location string `json:"location"`
	// HourlyEUR is the VM's net list price per hour (0: unknown); a lease
	// pays its share.
	HourlyEUR float64 `json:"hourly_eur,omitempty"`
	Addr      string  `json:"address"`  // sshd, host:22
	HostKey   string  `json:"host_key"` // pin it
	User      string  `json:"ssh_user"`
	Key       string  `json:"private_key"` // the lease's own key, OpenSSH PEM
	Socket    string  `json:"socket"`
	// Dial is the command the lease's key runs to reach buildkitd (its
	// forced command bridges it; the key forwards no socket).
	Dial   string `json:"dial"`
	Reused bool   `json:"reused"`
	// Prepared: the VM was ready for this lease before it asked (its
	// buildkitd running on what the lease wanted); nothing on it was
	// checked on the lease's path.
	Prepared bool  `json:"prepared,omitempty"`
	WaitMS   int64 `json:"wait_ms"`
	// State is the warm state the lease's buildkitd runs on (nil: none asked).
	State   *GrantState `json:"state,omitempty"`
	Created time.Time   `json:"created"`
	Expires time.Time   `json:"expires"`
	// Kernel and CgroupVersion are the machine's when the pool knows them
	// ("": the holder reads them).
	Kernel        string `json:"kernel,omitempty"`
	CgroupVersion int    `json:"cgroup_version,omitempty"`
}

// GrantState is what a lease's buildkitd started from.
type GrantState struct {
	Namespace  string `json:"namespace,omitempty"` // "": none (the VM held none of the lease's)
	Generation int    `json:"generation,omitempty"`
	Bytes      int64  `json:"bytes,omitempty"`
	OpenMS     int64  `json:"open_ms"`
	// Prepared: opened when the VM was recycled, before the lease (OpenMS
	// is then that time, off the lease's).
	Prepared bool `json:"prepared,omitempty"`
	// Next is the generation a commit of the lease makes.
	Next int `json:"next,omitempty"`
}

// Return is how a lease ends.
type Return struct {
	Outcome string `json:"outcome"` // ok, oom, error
	// Commit asks the pool to commit the lease's state (an ok outcome
	// with a write namespace only), after the return.
	Commit bool `json:"commit,omitempty"`
	// Async: answer once the VM is claimed back, and commit and recycle it
	// afterwards, off the build's time (the answer's Kept is then false and
	// its reason says so).
	Async bool `json:"async,omitempty"`
}

// Renewal extends a lease while its holder lives: it then expires
// TTLSeconds from now (at most MaxTTL after it began). A holder renews
// before its lease expires; one that died stops, and its VM is taken back
// when the lease expires.
type Renewal struct {
	TTLSeconds int64 `json:"ttl_seconds"`
}

// Renewed is a renewal's answer.
type Renewed struct {
	LeaseID string    `json:"lease_id"`
	Expires time.Time `json:"expires"`
}

// Check refuses a TTL that is not 1 s to MaxTTL.
func (r Renewal) Check() error {
	if r.TTLSeconds < 1 || r.TTLSeconds > int64(MaxTTL/time.Second) {
		return &RequestError{Field: "ttl_seconds", Msg: fmt.Sprintf("%d: want 1 to %d", r.TTLSeconds, int64(MaxTTL/time.Second))}
	}
	return nil
}

// Disposition is what the pool did with a returned VM.
type Disposition struct {
	VM     string `json:"vm"`
	Kept   bool   `json:"kept"` // recycled and idle; else destroyed
	Reason string `json:"reason"`
}

// API paths.
const (
	PathLeases = "/api/v1/vm-pool"
	PathDrain  = "/api/v1/vm-pool/drain"
	PathResume = "/api/v1/vm-pool/resume"
)

// ErrorBody is the API's answer to a request it refuses.
type ErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	// Code names a refusal a client acts on: CodeStoreUnavailable.
	Code string `json:"code,omitempty"`
}

// CodeStoreUnavailable is a 503 whose call may be made again after its
// Retry-After: the pool's store (its NATS cluster) is out of reach for now
// — a node down, a leader being elected. Every call is safe to repeat: a
// lease carries its request id, a return and a renewal are idempotent.
const CodeStoreUnavailable = "store_unavailable"

// Status is the pool as `pool ls` shows it.
type Status struct {
	Pool     string `json:"pool"`
	Draining bool   `json:"draining"`
	VMs      []VM   `json:"vms"`
}
