package compute

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lian-build/action/internal/sizing"
)

// Config is what a factory builds a provider from: the provider's own
// options by name (each factory parses them into its typed settings and
// names a bad one in its error) and what every provider needs.
type Config struct {
	Options  map[string]string
	Insecure []string // HOST:PORT registries reached over plain HTTP
	// Arch is the architecture the build's platforms need ("arm", "x86";
	// "": the provider's default).
	Arch string
	// StateSize is the size of a state volume a provider makes (e.g. 20GiB).
	StateSize string
}

// Setting is one setting a provider declares; the front doors make it a
// CLI flag, an Action input, a Woodpecker key, a gateway flag and a field
// of the gateway's configuration file, as it says. New finds its value in
// Config.Options under Name.
type Setting struct {
	// Name is the flag and the Action input; with '_' for '-' the
	// Woodpecker key and the configuration field. Prefix it with the
	// provider's name (hcloud-location), so that providers never clash.
	Name    string
	Help    string
	Default string
	Env     string // an environment variable that gives it
	Bool    bool
	// Secret is never a flag: it comes from a file (the flag NAME-file),
	// Env, a masked Action input or a Woodpecker secret.
	Secret bool
	// Machine is a path or a program on the machine that runs lian-build:
	// a flag only, never an Action input or a Woodpecker key.
	Machine bool
	// List: the value is a comma-separated list (an array in the
	// gateway's configuration file).
	List bool
	// Provider is the provider that declares it (DeclaredSettings fills it).
	Provider string
}

// Factory builds one kind of provider.
type Factory interface {
	Name() string
	// Tiers is the provider's tier table (the same names everywhere, its own machines).
	Tiers() sizing.Table
	// Options are the option names New accepts: the settings it declares,
	// and settings it shares with another provider.
	Options() []string
	// Settings are the settings the provider declares, in the order its
	// help lists them.
	Settings() []Setting
	// Features are what the provider can do; the front doors and the
	// pipeline decide from them, never from the provider's name.
	Features() Features
	New(cfg Config) (Provider, error)
}

// TierMemory reads a memory-per-tier option (cax11=2GiB,cax21=4GiB; ""
// is none), naming the option when it is bad.
func TierMemory(cfg Config, option string, table sizing.Table) (map[string]int64, error) {
	m, err := sizing.ParseTierMemory(cfg.Options[option], table)
	if err != nil {
		return nil, &OptionError{Option: option, Value: cfg.Options[option], Err: err}
	}
	return m, nil
}

// OptionChecker is a factory that can check its options without creating
// or contacting anything: a service (the gateway) refuses bad ones at
// start, not at its first build.
type OptionChecker interface {
	CheckOptions(cfg Config) error
}

// Features are what a provider can do, declared as a value (buildx's
// driver Features, Nomad's Capabilities). A provider that declares a
// feature implements the interface that serves it.
type Features struct {
	// LocalState: runners start from a clone of a state store on this
	// machine (--state-store PATH, Lease.State).
	LocalState bool
	// RemoteState: the provider keeps runner state itself (--state-store
	// volumes, Lease.RemoteState): it is a StateAdmin and its runners are
	// StatefulRunners.
	RemoteState bool
	// Reuse: a runner's machine may serve again after its lease; the runner
	// is an OutcomeSetter, told how the build ended before Destroy.
	Reuse bool
	// SampleEvery is the shortest interval between two Stats readings of a
	// runner (a reading costs a round trip: an exec, an SSH command); 0:
	// any.
	SampleEvery time.Duration
	// Archs are the architectures the provider builds on natively ("arm",
	// "x86"), its default first.
	Archs []string
}

// HostArch is this machine's architecture as Features.Archs spells it.
func HostArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm"
	}
	return "x86"
}

// FeaturesOf are the features of a registered provider (none for one
// that is not registered, such as a test's).
func FeaturesOf(name string) Features {
	f, err := Lookup(name)
	if err != nil {
		return Features{}
	}
	return f.Features()
}

// WithFeature are the registered providers that have a feature, sorted.
func WithFeature(has func(Features) bool) []string {
	var out []string
	for _, n := range Names() {
		if has(FeaturesOf(n)) {
			out = append(out, n)
		}
	}
	return out
}

// Machine is what a tier runs on with a provider, on one architecture.
type Machine struct {
	Tier sizing.Tier
	Type string // e.g. a Hetzner server type, or a cgroup limit
}

// MachineTable is implemented by factories that can say what each tier runs
// on for an architecture ("arm" or "x86"; "" is the provider's default):
// the architecture they chose and one Machine per tier.
type MachineTable interface {
	Machines(arch string) (string, []Machine)
}

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a factory available by its name; a provider package calls
// it from init.
func Register(f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[f.Name()]; dup {
		panic("compute: provider " + f.Name() + " registered twice")
	}
	factories[f.Name()] = f
}

// Names are the registered providers, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(factories))
	for n := range factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// UnknownProviderError names a provider that is not registered.
type UnknownProviderError struct{ Name string }

func (e *UnknownProviderError) Error() string {
	return fmt.Sprintf("unknown compute provider %q (available: %s)", e.Name, strings.Join(Names(), ", "))
}

// Lookup is the factory of a provider.
func Lookup(name string) (Factory, error) {
	mu.RLock()
	f, ok := factories[name]
	mu.RUnlock()
	if !ok {
		return nil, &UnknownProviderError{Name: name}
	}
	return f, nil
}

// New builds the named provider, refusing options it does not take.
func New(name string, cfg Config) (Provider, error) {
	f, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	for k, v := range cfg.Options {
		if v != "" && !slices.Contains(f.Options(), k) {
			return nil, fmt.Errorf("provider %s takes no option %s (it takes: %s)", name, k, strings.Join(f.Options(), ", "))
		}
	}
	return f.New(cfg)
}

// OptionError is a bad provider option; front doors name it as their user wrote it.
type OptionError struct {
	Option string
	Value  string // what was given ("" when it says nothing, or is a secret)
	Err    error
}

func (e *OptionError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %v", e.Option, e.Err)
	}
	return fmt.Sprintf("%s %q: %v", e.Option, e.Value, e.Err)
}
func (e *OptionError) Unwrap() error { return e.Err }

// DeclaredSettings are the settings every registered provider declares,
// by provider name, each name once (a setting two providers share is
// declared by one of them).
func DeclaredSettings() []Setting {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	var out []Setting
	for _, n := range names {
		for _, s := range factories[n].Settings() {
			if !seen[s.Name] {
				seen[s.Name] = true
				s.Provider = n
				out = append(out, s)
			}
		}
	}
	return out
}
