package local

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
)

// Option names of the local provider (compute.Config.Options).
const (
	OptStateDir   = "state-dir"
	OptBuildkitd  = "buildkitd"
	OptTierMemory = "local-tier-memory"
)

type factory struct{}

func init() { compute.Register(factory{}) }

func (factory) Name() string        { return "local" }
func (factory) Tiers() sizing.Table { return sizing.HCloud }
func (factory) Options() []string   { return []string{OptStateDir, OptBuildkitd, OptTierMemory} }

// Features: runners start from a state store's clone on this machine;
// Stats are cgroup files, read at any rate.
func (factory) Features() compute.Features {
	return compute.Features{LocalState: true, Archs: []string{compute.HostArch()}}
}

func (factory) Settings() []compute.Setting {
	return []compute.Setting{
		{Name: OptTierMemory, Env: "LIAN_LOCAL_TIER_MEMORY", Help: "local and docker providers: memory per tier, e.g. cax11=2GiB,cax21=4GiB"},
		{Name: OptStateDir, Env: "LIAN_STATE_DIR", Machine: true, Default: DefaultStateDir, Help: "local provider: runner state directory (a journaled, btrfs or XFS filesystem, or tmpfs)"},
		{Name: OptBuildkitd, Env: "LIAN_BUILDKITD", Machine: true, Help: "local provider: buildkitd binary (default: on PATH or next to lian-build)"},
	}
}

// Machines: every tier runs on this machine, in a cgroup of the tier's
// memory, whatever the architecture asked for; a tier larger than the
// machine says what it really gets.
func (factory) Machines(string) (string, []compute.Machine) {
	cpus, mem := runtime.NumCPU(), machineMemory()
	var out []compute.Machine
	for _, t := range sizing.HCloud {
		desc := fmt.Sprintf("this machine, cgroup of %d GB", t.MemoryGB)
		var short []string
		if t.CPU > cpus {
			short = append(short, fmt.Sprintf("%d CPUs", cpus))
		}
		if mem > 0 && int64(t.MemoryGB)<<30 > mem {
			short = append(short, fmt.Sprintf("%.1f GB", float64(mem)/(1<<30)))
		}
		if len(short) > 0 {
			desc += " — more than this machine has (" + strings.Join(short, ", ") + "): the build gets at most that"
		}
		out = append(out, compute.Machine{Tier: t, Type: desc})
	}
	return runtimeArch(), out
}

// machineMemory is the machine's memory in bytes (0: unknown).
func machineMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

func runtimeArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm"
	}
	return "x86"
}

// CheckOptions checks the tier memory, creating nothing.
func (f factory) CheckOptions(cfg compute.Config) error {
	_, err := compute.TierMemory(cfg, OptTierMemory, f.Tiers())
	return err
}

func (f factory) New(cfg compute.Config) (compute.Provider, error) {
	mem, err := compute.TierMemory(cfg, OptTierMemory, f.Tiers())
	if err != nil {
		return nil, err
	}
	if dir := cfg.Options[OptStateDir]; dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, &compute.OptionError{Option: OptStateDir, Value: dir, Err: fmt.Errorf("cannot create it: %v", errors.Unwrap(err))}
		}
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
