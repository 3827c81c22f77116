// Package sizing decides which runner tier a build gets.
//
// Tiers are named after Hetzner's ARM server types (cax11 … cax41). Every
// compute provider has a table with the same names; the local provider maps
// them to cgroup limits instead of VM types.
package sizing

import (
	"fmt"
	"sort"
	"strings"
)

// Tier is one runner size.
type Tier struct {
	Name     string `json:"name"`
	CPU      int    `json:"cpu"`
	MemoryGB int    `json:"memory_gb"`
}

// Table is the ordered list of tiers of one provider, smallest first.
type Table []Tier

// HCloud is the Hetzner Cloud ARM tier table (docs/architecture.md, "Resolve sizing").
var HCloud = Table{
	{Name: "cax11", CPU: 2, MemoryGB: 4},
	{Name: "cax21", CPU: 4, MemoryGB: 8},
	{Name: "cax31", CPU: 8, MemoryGB: 16},
	{Name: "cax41", CPU: 16, MemoryGB: 32},
}

// UnknownTierError is returned for a tier name that is not in a table.
type UnknownTierError struct {
	Name  string
	Valid []string
}

func (e *UnknownTierError) Error() string {
	return fmt.Sprintf("unknown runner tier %q (valid tiers: %s)", e.Name, strings.Join(e.Valid, ", "))
}

// NoNextTierError is returned by Next for the largest tier.
type NoNextTierError struct{ Tier string }

func (e *NoNextTierError) Error() string {
	return fmt.Sprintf("runner tier %s is the largest; there is no next tier", e.Tier)
}

// Names lists the tier names in order.
func (t Table) Names() []string {
	out := make([]string, len(t))
	for i, tier := range t {
		out[i] = tier.Name
	}
	return out
}

// Lookup finds a tier by name (case-insensitive).
func (t Table) Lookup(name string) (Tier, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, tier := range t {
		if tier.Name == n {
			return tier, nil
		}
	}
	return Tier{}, &UnknownTierError{Name: name, Valid: t.Names()}
}

// Next returns the tier after name: the one an OOM retry moves to.
func (t Table) Next(name string) (Tier, error) {
	n := strings.ToLower(name)
	for i, tier := range t {
		if tier.Name == n {
			if i+1 == len(t) {
				return Tier{}, &NoNextTierError{Tier: tier.Name}
			}
			return t[i+1], nil
		}
	}
	return Tier{}, &UnknownTierError{Name: name, Valid: t.Names()}
}

// Fit returns the smallest tier with at least cpu CPUs and memGB of memory.
func (t Table) Fit(cpu, memGB int) (Tier, bool) {
	sorted := append(Table(nil), t...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].MemoryGB != sorted[j].MemoryGB {
			return sorted[i].MemoryGB < sorted[j].MemoryGB
		}
		return sorted[i].CPU < sorted[j].CPU
	})
	for _, tier := range sorted {
		if tier.CPU >= cpu && tier.MemoryGB >= memGB {
			return tier, true
		}
	}
	return Tier{}, false
}
