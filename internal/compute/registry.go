package compute

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/lian-build/action/internal/sizing"
)

// Config is what a factory builds a provider from: the provider's own
// options by name (each factory parses them into its typed settings and
// names a bad one in its error) and what every provider needs.
type Config struct {
	Options  map[string]string
	Insecure []string // HOST:PORT registries reached over plain HTTP
}

// Factory builds one kind of provider.
type Factory interface {
	Name() string
	// Tiers is the provider's tier table (the same names everywhere, its own machines).
	Tiers() sizing.Table
	// Options are the option names New accepts.
	Options() []string
	New(cfg Config) (Provider, error)
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
	Err    error
}

func (e *OptionError) Error() string { return fmt.Sprintf("%s: %v", e.Option, e.Err) }
func (e *OptionError) Unwrap() error { return e.Err }
