package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/metrics"
	"github.com/lian-build/action/internal/platforms"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/state"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ProviderName is the provider the settings name (default local).
func (s Settings) ProviderName() string {
	if s.ComputeProvider == "" {
		return "local"
	}
	return s.ComputeProvider
}

// Tiers is the tier table of the provider the settings name: tiers are
// validated against the provider in use.
func (s Settings) Tiers() (sizing.Table, error) {
	f, err := compute.Lookup(s.ProviderName())
	if err != nil {
		return nil, &buildkit.InputError{Field: s.name("compute-provider"), Value: s.ComputeProvider, Msg: err.Error()}
	}
	return f.Tiers(), nil
}

// providerValues are the values of every provider option the settings
// give (without secrets, none is read; a masked input's is kept): each declared setting's, a secret from its file, else a masked
// input, else its environment variable, any other from its environment
// variable when no door gave it.
func (s Settings) providerValues(secrets bool) (map[string]string, error) {
	v := map[string]string{}
	for _, d := range compute.DeclaredSettings() {
		v[d.Name] = s.Option(d.Name)
		if d.Secret && !secrets {
			continue
		}
		if d.Secret {
			if err := s.secretOption(v, d.Name, d.Name+"-file", s.Option(d.Name+"-file"), d.Env); err != nil {
				return nil, err
			}
		} else if v[d.Name] == "" && d.Env != "" {
			v[d.Name] = os.Getenv(d.Env)
		}
	}
	return v, nil
}

// secretOption fills a provider's secret option from its file, else from
// the environment variable, when no masked input gave it.
func (s Settings) secretOption(v map[string]string, option, fileSetting, file, env string) error {
	if file != "" {
		tok, err := ReadSecretFile(s.name(fileSetting), file)
		if err != nil {
			return err
		}
		v[option] = tok
	}
	if v[option] == "" {
		v[option] = os.Getenv(env)
	}
	return nil
}

// arch is the architecture a build's machines need: arm when a platform
// runs natively on arm (linux/arm64), else x86 when one runs on x86
// (linux/amd64), else "" (the provider's default).
func (s Settings) arch() string {
	archs := map[string]bool{}
	for _, p := range s.Platforms {
		archs[platforms.ArchOf(p)] = true
	}
	switch {
	case archs["arm"]:
		return "arm"
	case archs["x86"]:
		return "x86"
	}
	return ""
}

// Machines are what each tier runs on with the provider the settings name
// and the architecture their platforms need (nil when the provider does not say).
func (s Settings) Machines() (string, []compute.Machine, error) {
	f, err := compute.Lookup(s.ProviderName())
	if err != nil {
		return "", nil, &buildkit.InputError{Field: s.name("compute-provider"), Value: s.ComputeProvider, Msg: err.Error()}
	}
	mt, ok := f.(compute.MachineTable)
	if !ok {
		return "", nil, nil
	}
	arch, ms := mt.Machines(s.arch())
	return arch, ms, nil
}

// OpenProvider builds the compute provider the settings name through its
// registered factory; nothing here knows the provider's type.
func (s Settings) OpenProvider() (compute.Provider, error) {
	f, cfg, err := s.providerConfig(true)
	if err != nil {
		return nil, err
	}
	p, err := compute.New(f.Name(), cfg)
	return p, s.optionErr(err)
}

// checkProvider checks the provider's options as a factory that can
// (compute.OptionChecker) checks them, creating and contacting nothing.
func (s Settings) checkProvider() error {
	f, cfg, err := s.providerConfig(false)
	if err != nil {
		return err
	}
	if c, ok := f.(compute.OptionChecker); ok {
		return s.optionErr(c.CheckOptions(cfg))
	}
	return nil
}

// providerConfig is the factory the settings name and its configuration
// (its secrets read from their files or variables, with secrets).
func (s Settings) providerConfig(secrets bool) (compute.Factory, compute.Config, error) {
	f, err := compute.Lookup(s.ProviderName())
	if err != nil {
		return nil, compute.Config{}, &buildkit.InputError{Field: s.name("compute-provider"), Value: s.ComputeProvider, Msg: err.Error()}
	}
	values, err := s.providerValues(secrets)
	if err != nil {
		return nil, compute.Config{}, err
	}
	opts := map[string]string{}
	for _, o := range f.Options() {
		opts[o] = values[o]
	}
	return f, compute.Config{Options: opts, Insecure: s.Insecure, Arch: s.arch(), StateSize: s.StateStoreSize}, nil
}

// optionErr names a provider's bad option as the front door calls its setting.
func (s Settings) optionErr(err error) error {
	var oe *compute.OptionError
	if errors.As(err, &oe) {
		return &buildkit.InputError{Field: s.name(optionSetting(oe.Option)), Value: oe.Value, Msg: oe.Err.Error()}
	}
	return err
}

// optionSetting is the setting a provider option comes from: its own
// name, or the core setting the provider was given it from.
func optionSetting(option string) string {
	switch option {
	case "arch":
		return "platforms"
	case "state-volume-size":
		return "state-store-size"
	}
	return option
}

// OpenHistory returns the P95 history: JetStream when a NATS URL is set, files otherwise.
func (s Settings) OpenHistory(ctx context.Context) (metrics.Recorder, func(), error) {
	if s.NatsURL == "" {
		dir := s.MetricsDir
		if dir == "" {
			dir = metrics.DefaultDir
		}
		return metrics.Recorder{Store: metrics.FileStore{Dir: dir}}, func() {}, nil
	}
	nc, err := nats.Connect(s.NatsURL, nats.Timeout(2*time.Second), nats.Name("lian-build metrics"), nats.MaxReconnects(0))
	if err != nil {
		return metrics.Recorder{}, nil, fmt.Errorf("nats-url: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return metrics.Recorder{}, nil, err
	}
	// A cluster that just lost a node (or a loaded machine) can take a
	// while to confirm the bucket: a gateway's start waits for it.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kv, err := metrics.OpenKV(ctx, js)
	if err != nil {
		nc.Close()
		return metrics.Recorder{}, nil, err
	}
	return metrics.Recorder{Store: kv}, nc.Close, nil
}

// OpenState opens the runner state store the settings name (nil without
// one) and the size a state is pruned to before a commit (0: none).
func (s Settings) OpenState(ctx context.Context) (*state.Store, int64, error) {
	return s.openState(ctx, false)
}

// OpenExistingState is OpenState for commands that only look after a store
// (state ls, rm, gc, unmount): a store that does not exist is an error,
// never created.
func (s Settings) OpenExistingState(ctx context.Context) (*state.Store, int64, error) {
	return s.openState(ctx, true)
}

func (s Settings) openState(ctx context.Context, existing bool) (*state.Store, int64, error) {
	if s.StateStore == "" {
		return nil, 0, nil
	}
	field := s.name("state-store")
	p, f := s.ProviderName(), compute.FeaturesOf(s.ProviderName())
	switch {
	case f.RemoteState && s.StateStore == RemoteStateStore:
		keep, err := s.stateMax()
		return nil, keep, err
	case f.RemoteState:
		return nil, 0, &buildkit.InputError{Field: field, Value: s.StateStore, Msg: fmt.Sprintf("the %s provider keeps runner state itself: the state store is %s", p, RemoteStateStore)}
	case !f.LocalState:
		return nil, 0, &buildkit.InputError{Field: field, Value: s.StateStore, Msg: fmt.Sprintf("the %s provider keeps no runner state (a path: %s; %s: %s)", p,
			strings.Join(compute.WithFeature(func(f compute.Features) bool { return f.LocalState }), ", "), RemoteStateStore, strings.Join(compute.WithFeature(func(f compute.Features) bool { return f.RemoteState }), ", "))}
	case s.StateStore == RemoteStateStore:
		return nil, 0, &buildkit.InputError{Field: field, Value: s.StateStore, Msg: fmt.Sprintf("the %s provider keeps runner state on this machine: the state store is a PATH", p)}
	}
	opts := state.Options{Path: s.StateStore, Existing: existing}
	var err error
	if opts.ImageSize, err = s.size("state-store-size", s.StateStoreSize); err != nil {
		return nil, 0, err
	}
	if opts.MaxBytes, err = s.stateMax(); err != nil {
		return nil, 0, err
	}
	st, err := state.Open(ctx, opts)
	var me *state.MissingError
	if errors.As(err, &me) {
		return nil, 0, &buildkit.InputError{Field: field, Value: s.StateStore, Msg: "does not exist (a build with it creates it)"}
	}
	var oe *state.OpenError
	if errors.As(err, &oe) {
		return nil, 0, &buildkit.InputError{Field: field, Value: s.StateStore, Msg: oe.Err.Error()}
	}
	if err != nil {
		return nil, 0, &buildkit.InputError{Field: field, Value: s.StateStore, Msg: err.Error()}
	}
	return st, opts.MaxBytes, nil
}

// RemoteStateStore is the state store value that keeps runner state on the
// provider's side (hcloud: a Volume per namespace and location).
const RemoteStateStore = "volumes"

// RemoteState says whether the provider keeps the runner state.
func (s Settings) RemoteState() bool {
	return s.StateStore == RemoteStateStore && compute.FeaturesOf(s.ProviderName()).RemoteState
}

// stateMax is the state-max setting in bytes (0: none).
func (s Settings) stateMax() (int64, error) { return s.size("state-max", s.StateMax) }

// size reads a size setting ("20GiB"; "" is 0), naming it when it is bad.
func (s Settings) size(setting, text string) (int64, error) {
	if text == "" {
		return 0, nil
	}
	n, err := sizing.ParseSize(text)
	if err != nil {
		return 0, &buildkit.InputError{Field: s.name(setting), Value: text, Msg: err.Error()}
	}
	return n, nil
}
