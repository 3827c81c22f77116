// Package pipeline runs one build: sizing, lifecycle events, a fresh runner,
// the build, a bounded OOM retry on the next tier, metrics, and teardown that
// always happens. It knows nothing of who called it.
package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
)

// Request is one build, as the caller's directives describe it.
type Request struct {
	// BuildID identifies the build in events, leases and logs; generated when empty.
	BuildID string
	// Workspace names the project for metrics, events and cache namespaces.
	Workspace string
	// RunnerOverride is a tier that wins over every other sizing rule.
	RunnerOverride string
	// Spec is the .build-spec.ncl of the context, nil when there is none.
	Spec *sizing.Spec
	// Build is what BuildKit builds.
	Build buildkit.Options
	// Actor is who builds: it picks the cache namespaces (ci, human:ID, agent:ID, ci_aux).
	Actor cache.Actor
	// Cache is where the registry cache lives and what happens to it.
	Cache CacheSettings
	// Commit and Ref name the source, when the caller knows them (events, reports).
	Commit string
	Ref    string
	// LeaseTTL is how long a runner may outlive a crashed caller before the
	// reaper removes it; default: the time budget plus 10 minutes.
	LeaseTTL time.Duration
	// Expected is how long the build is expected to take (default: the
	// workspace's P95 duration); a VM pool fits it into a machine's paid hour.
	Expected time.Duration
}

// CacheSettings are the registry cache of a build; no Registry, no cache.
type CacheSettings struct {
	Registry     string // HOST[:PORT][/PREFIX]
	Provider     cache.Provider
	Disposition  cache.Disposition
	ExtraImports []string
	IgnoreError  bool
	Insecure     bool
	Auth         cache.Auth
}

// Validate checks the request before anything is spawned.
func (r Request) Validate() error {
	if r.Workspace != "" {
		if rule := cache.NameRule(r.Workspace); rule != "" {
			return &buildkit.InputError{Field: "workspace", Value: r.Workspace, Msg: rule}
		}
	}
	return r.Build.Validate()
}

// Outcome of a build or an attempt.
type Outcome string

const (
	OutcomeSuccess  Outcome = "success"
	OutcomeFailure  Outcome = "failure"
	OutcomeOOM      Outcome = "oom"
	OutcomeCanceled Outcome = "canceled"
	OutcomeTimeout  Outcome = "timeout"
	OutcomeError    Outcome = "error" // the build could not run (runner, input)
)

// Attempt is one try on one runner.
type Attempt struct {
	Number   int    `json:"number"`
	Tier     string `json:"tier"`
	RunnerID string `json:"runner_id"`
	SpawnMS  int64  `json:"spawn_ms"`
	// Runner is the runner the attempt ran on: provider, server, type,
	// location, and the spawn split into create, boot and ready.
	Runner     *compute.RunnerInfo `json:"runner,omitempty"`
	DurationMS int64               `json:"duration_ms"`
	Outcome    Outcome             `json:"outcome"`
	OOM        bool                `json:"oom"`
	Error      string              `json:"error,omitempty"`
	// CostEUR is what the attempt's machine cost (net, its provider's list
	// price and billing; 0 when the provider has no price).
	CostEUR float64 `json:"cost_eur,omitempty"`
	// ContextStream says how the context crossed when it was to go as one
	// stream: the bytes sent, or why it went through the session.
	ContextStream *buildkit.ContextStream `json:"context_stream,omitempty"`
}

// Usage is the resource use sampled on the runner during the build.
type Usage struct {
	Samples     int     `json:"samples"`
	CPUP95      float64 `json:"cpu_p95"`       // cores
	MemP95Bytes uint64  `json:"mem_p95_bytes"` // bytes
	MemPeak     uint64  `json:"mem_peak_bytes"`
}

// Result is what happened. Field names are stable: reports and front doors read them.
type Result struct {
	BuildID          string            `json:"build_id"`
	Workspace        string            `json:"workspace,omitempty"`
	Outcome          Outcome           `json:"outcome"`
	Provider         string            `json:"provider"`
	Tier             string            `json:"tier"`
	SizingSource     sizing.Source     `json:"sizing_source"`
	SizingReason     string            `json:"sizing_reason"`
	SizingSuggestion string            `json:"sizing_suggestion,omitempty"`
	Attempts         []Attempt         `json:"attempts"`
	OOMRetries       int               `json:"oom_retries"`
	StepsTotal       int               `json:"steps_total"`
	StepsCached      int               `json:"steps_cached"`
	StepsCacheable   int               `json:"steps_cacheable"`
	Digest           string            `json:"digest,omitempty"`
	Tags             []string          `json:"tags,omitempty"`
	DurationMS       int64             `json:"duration_ms"`
	Usage            *Usage            `json:"usage,omitempty"`
	Actor            string            `json:"actor,omitempty"`
	CacheImports     []string          `json:"cache_imports,omitempty"`
	CacheExports     []string          `json:"cache_exports,omitempty"`
	CachePromoted    string            `json:"cache_promoted,omitempty"`
	State            *StateReport      `json:"state,omitempty"`
	Failure          *buildkit.Failure `json:"failure,omitempty"`
	Error            string            `json:"error,omitempty"`
	StartedAt        time.Time         `json:"started_at"`
	FinishedAt       time.Time         `json:"finished_at"`
	// CostEUR is what the build's machines cost (net EUR, every attempt's).
	CostEUR float64 `json:"cost_eur,omitempty"`
	// Provenance is the mode of the SLSA provenance attestation pushed with
	// the image ("": none).
	Provenance string `json:"provenance,omitempty"`
	// Signed are the digests signed with the cosign key whose fingerprint
	// is SignedBy.
	Signed   []string `json:"signed,omitempty"`
	SignedBy string   `json:"signed_by,omitempty"`
	// Signatures are the digests of the signature manifests written, in
	// the order of Signed.
	Signatures []string `json:"signatures,omitempty"`
	// Attestations are what each platform image of the pushed index had
	// attested (provenance, SBOM), read back from the registry.
	Attestations []buildkit.Attestation `json:"attestations,omitempty"`
	// Emulated are the platforms the runner built through QEMU.
	Emulated []string `json:"emulated,omitempty"`
	// Legs are the runners of a build split by architecture, one each;
	// Digest is then their image index's.
	Legs []Leg `json:"legs,omitempty"`
}

// Leg is one architecture's part of a multi-platform build: its platforms
// and the result of its own build (sizing, attempts, cache, runner).
type Leg struct {
	Platforms []string `json:"platforms"`
	Result    Result   `json:"result"`
}

// OOMError is a build that ran out of memory on every tier it was allowed.
type OOMError struct {
	Tiers []string
	Err   error
}

func (e *OOMError) Error() string {
	return fmt.Sprintf("the build ran out of memory on %s (one retry on the next tier is the limit); set runner_type in .build-spec.ncl to a larger tier: %v",
		joinTiers(e.Tiers), e.Err)
}

func (e *OOMError) Unwrap() error { return e.Err }

func joinTiers(t []string) string {
	switch len(t) {
	case 0:
		return "its tier"
	case 1:
		return t[0]
	}
	s := t[0]
	for _, x := range t[1:] {
		s += " and " + x
	}
	return s
}

// TimeoutError is a build stopped at its time budget.
type TimeoutError struct {
	Budget time.Duration
	Err    error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("the build exceeded its time budget of %s (time_budget_min in .build-spec.ncl) and was cancelled", e.Budget)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// ErrCanceled is returned when the caller cancelled the build.
var ErrCanceled = errors.New("build canceled")
