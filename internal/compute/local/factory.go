package local

import (
	"fmt"
	"runtime"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
)

// Option names of the local provider (compute.Config.Options).
const (
	OptStateDir   = "state-dir"
	OptBuildkitd  = "buildkitd"
	OptTierMemory = "tier-memory"
)

type factory struct{}

func init() { compute.Register(factory{}) }

func (factory) Name() string        { return "local" }
func (factory) Tiers() sizing.Table { return sizing.HCloud }
func (factory) Options() []string   { return []string{OptStateDir, OptBuildkitd, OptTierMemory} }

// New parses the options into Options and builds the provider.
// Machines: every tier runs on this machine, in a cgroup of the tier's
// memory, whatever the architecture asked for.
func (factory) Machines(string) (string, []compute.Machine) {
	var out []compute.Machine
	for _, t := range sizing.HCloud {
		out = append(out, compute.Machine{Tier: t, Type: fmt.Sprintf("this machine, cgroup of %d GB", t.MemoryGB)})
	}
	return runtimeArch(), out
}

func runtimeArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm"
	}
	return "x86"
}

func (f factory) New(cfg compute.Config) (compute.Provider, error) {
	mem, err := ParseTierMemory(cfg.Options[OptTierMemory], f.Tiers())
	if err != nil {
		return nil, &compute.OptionError{Option: OptTierMemory, Err: err}
	}
	p, err := New(Options{
		Buildkitd: cfg.Options[OptBuildkitd], StateDir: cfg.Options[OptStateDir], TierMemory: mem,
		InsecureRegistries: cfg.Insecure, Table: f.Tiers(),
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}
