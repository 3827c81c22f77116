package sizing

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Source says which rule decided the tier.
type Source string

const (
	SourceOverride Source = "override"
	SourceSpec     Source = "spec"
	SourceP95      Source = "p95"
	SourceDefault  Source = "default"
	// SourceNone is a build that ended before it was sized (its source not
	// fetched, superseded while queued): no rule decided.
	SourceNone Source = "none"
)

// Spec is the sizing part of a .build-spec.ncl (filled by the specs layer).
type Spec struct {
	RunnerType string
	CPU        int
	MemoryGB   int
	TimeBudget time.Duration // time_budget_min; 0 = the language default
	Language   string
}

// Usage is a workspace's historical P95 resource use.
type Usage struct {
	CPU      float64 // cores
	MemoryGB float64
	Samples  int
	Approved bool
	// Duration is the P95 of the builds' durations (0: not recorded).
	Duration time.Duration
}

// History gives the P95 usage of a workspace. ok is false when there is none.
type History interface {
	P95(ctx context.Context, workspace string) (u Usage, ok bool, err error)
}

// Input is everything Resolve looks at.
type Input struct {
	Table      Table
	Override   string // runner_override, or the tier of `/lian rebuild cax31`
	Spec       *Spec  // nil when the context has no .build-spec.ncl
	Workspace  string
	History    History // nil: no history
	ContextDir string  // for language detection
}

// Decision is the outcome of Resolve.
type Decision struct {
	Tier       Tier          `json:"tier"`
	Source     Source        `json:"source"`
	Reason     string        `json:"reason"`
	Language   string        `json:"language"`
	Budget     time.Duration `json:"-"`
	Suggestion string        `json:"suggestion,omitempty"` // unapproved P95 advice
}

// Resolve applies the sizing rules in order; the first that matches wins.
func Resolve(ctx context.Context, in Input) (Decision, error) {
	if len(in.Table) == 0 {
		return Decision{}, fmt.Errorf("sizing: empty tier table")
	}
	lang, marker, err := DetectLanguage(in.ContextDir)
	if err != nil {
		return Decision{}, fmt.Errorf("sizing: build context: %w", err)
	}
	if in.Spec != nil && in.Spec.Language != "" {
		l, ok := LanguageByName(in.Spec.Language)
		if !ok {
			return Decision{}, fmt.Errorf("sizing: .build-spec.ncl: language %q is not one of rust, go, java, generic", in.Spec.Language)
		}
		lang, marker = l, ""
	}
	d := Decision{Language: lang.Name, Budget: lang.Budget}
	if in.Spec != nil && in.Spec.TimeBudget > 0 {
		d.Budget = in.Spec.TimeBudget
	}

	// 0. override
	if in.Override != "" {
		t, err := in.Table.Lookup(in.Override)
		if err != nil {
			return Decision{}, err
		}
		d.Tier, d.Source, d.Reason = t, SourceOverride, fmt.Sprintf("runner override %s", t.Name)
		return d, nil
	}
	// 1. explicit spec
	if s := in.Spec; s != nil && (s.RunnerType != "" || s.CPU > 0 || s.MemoryGB > 0) {
		if s.RunnerType != "" {
			t, err := in.Table.Lookup(s.RunnerType)
			if err != nil {
				return Decision{}, fmt.Errorf(".build-spec.ncl: runner_type: %w", err)
			}
			d.Tier, d.Source, d.Reason = t, SourceSpec, fmt.Sprintf(".build-spec.ncl sets runner_type = %q", t.Name)
			return d, nil
		}
		t, ok := in.Table.Fit(s.CPU, s.MemoryGB)
		if !ok {
			return Decision{}, fmt.Errorf(".build-spec.ncl: cpu = %d, memory_gb = %d fits no tier (largest: %s)", s.CPU, s.MemoryGB, describe(in.Table[len(in.Table)-1]))
		}
		d.Tier, d.Source, d.Reason = t, SourceSpec, fmt.Sprintf(".build-spec.ncl asks for %d CPU / %d GB; smallest tier that fits", s.CPU, s.MemoryGB)
		return d, nil
	}
	// 2. P95 history
	if in.History != nil && in.Workspace != "" {
		u, ok, err := in.History.P95(ctx, in.Workspace)
		if err != nil {
			return Decision{}, fmt.Errorf("sizing: p95 history of %s: %w", in.Workspace, err)
		}
		if ok {
			cpu, mem := P95Need(u)
			if t, fits := in.Table.Fit(cpu, mem); fits {
				why := fmt.Sprintf("P95 of %d builds %.1f CPU / %s × 1.2 → %d CPU / %d GB", u.Samples, u.CPU, memText(u.MemoryGB), cpu, mem)
				if u.Approved {
					d.Tier, d.Source, d.Reason = t, SourceP95, why
					return d, nil
				}
				d.Suggestion = fmt.Sprintf("%s (%s; not approved for workspace %s)", t.Name, why, in.Workspace)
			}
		}
	}
	// 3. language default
	t, ok := in.Table.Fit(lang.CPU, lang.MemoryGB)
	if !ok {
		t = in.Table[len(in.Table)-1]
	}
	found := "no language marker"
	if marker != "" {
		found = marker + " found"
	} else if in.Spec != nil && in.Spec.Language != "" {
		found = ".build-spec.ncl language"
	}
	d.Tier, d.Source = t, SourceDefault
	d.Reason = fmt.Sprintf("%s default %d CPU / %d GB (%s)", lang.Name, lang.CPU, lang.MemoryGB, found)
	return d, nil
}

// P95Need turns P95 usage into a request: × 1.2, rounded up, at least 2 CPU / 4 GB.
func P95Need(u Usage) (cpu, memGB int) {
	// The epsilon keeps float noise (2.5 × 1.2 = 3.0000000000000004) from adding a unit.
	cpu = int(math.Ceil(u.CPU*1.2 - 1e-9))
	memGB = int(math.Ceil(u.MemoryGB*1.2 - 1e-9))
	return max(cpu, 2), max(memGB, 4)
}

func describe(t Tier) string { return fmt.Sprintf("%s %d CPU / %d GB", t.Name, t.CPU, t.MemoryGB) }

// memText is a memory amount for people: GB, or MiB below one.
func memText(gb float64) string {
	if gb < 1 {
		return fmt.Sprintf("%.0f MiB", gb*1024)
	}
	return fmt.Sprintf("%.1f GB", gb)
}
