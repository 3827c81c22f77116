// Package frontdoor turns the settings every front door collects — CLI flags,
// Action inputs, Woodpecker plugin settings — into one pipeline Request and a
// ready pipeline. The front doors only translate their platform's conventions
// into Settings; everything after that is shared, so equivalent settings make
// identical requests whichever door they came through.
package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/safefile"
	"github.com/lian-build/action/internal/sign"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/spec"
)

// Settings are a build as a front door describes it. Lists hold one item per
// entry; Given names the settings the user set explicitly (they win over
// directives).
type Settings struct {
	Context          string
	File             string
	Tags             []string
	Push             bool
	BuildArgs        []string          // NAME=VALUE
	Labels           []string          // NAME=VALUE
	Secrets          []string          // id=ID,src=PATH | id=ID,env=VAR
	InlineSecrets    map[string]string // id → value (Action `secrets`, Woodpecker from_secret)
	SSH              []string
	Target           string
	Platforms        []string
	EmulatePlatforms bool
	BuildContexts    []string
	Outputs          []string
	CacheFrom        []string
	CacheTo          []string
	NoCache          bool
	Progress         string

	Workspace        string
	Directives       string
	RunnerType       string
	ComputeProvider  string
	StateStore       string
	StateStoreSize   string
	StateMax         string
	Actor            string
	CacheDisposition string
	Registry         string
	RegistryProvider string
	RegistryUsername string
	RegistryPassword string
	// RegistryPasswordFile, when set, gives RegistryPassword (read by Request).
	RegistryPasswordFile string
	CacheImports         []string
	Lamina               []string
	CacheIgnoreError     bool
	Insecure             []string
	NatsURL              string
	EventsPrefix         string
	MetricsDir           string

	Commit string
	Ref    string
	// Source is the source repository's URL, recorded in provenance.
	Source string
	// Public: the source repository is public (provenance defaults to
	// mode=max for its CI builds, as build-push-action's does).
	Public     bool
	Provenance string
	// SBOM is the sbom setting (false, true, generator=IMAGE) and
	// SBOMScanner the scanner image it uses when true.
	SBOM        string
	SBOMScanner string
	// SignKey is a cosign private key: its PEM, or the file holding it.
	SignKey string
	// Checkout, when set, is the repository checkout a build comes from
	// (the gateway's): its context, Dockerfile and directives' paths must
	// stay inside it. Without it, a directives file's paths stay inside
	// the checkout the file belongs to (spec.CheckoutOf).
	Checkout string

	// Logins are registry credentials for pushes and pulls, by host.
	Logins map[string]buildkit.Credential

	Given map[string]bool
	// Names maps a setting ("build-args") to what the user calls it in this
	// front door ("--build-arg", the input build-args, settings: build_args),
	// so that errors name what the user wrote.
	Names map[string]string
	// fromDirectives maps the settings taken from the directives file to
	// their field there, for errors.
	fromDirectives map[string]string
	// opts and optBools hold the compute providers' settings by name
	// (compute.Setting): no provider's option has a field here.
	opts     map[string]*string
	optBools map[string]*bool
}

// Option is the value of a provider's setting ("" when none was given).
func (s Settings) Option(name string) string {
	if p, ok := s.opts[name]; ok {
		return *p
	}
	if b, ok := s.optBools[name]; ok {
		return strconv.FormatBool(*b)
	}
	return ""
}

// SetOption gives a provider's setting a value.
func (s *Settings) SetOption(name, value string) {
	if p, ok := s.optBools[name]; ok {
		*p, _ = strconv.ParseBool(value)
		return
	}
	*s.optionPtr(name) = value
}

func (s *Settings) optionPtr(name string) *string {
	if s.opts == nil {
		s.opts = map[string]*string{}
	}
	if s.opts[name] == nil {
		s.opts[name] = new(string)
	}
	return s.opts[name]
}

func (s *Settings) optionBool(name string) *bool {
	if s.optBools == nil {
		s.optBools = map[string]*bool{}
	}
	if s.optBools[name] == nil {
		s.optBools[name] = new(bool)
	}
	return s.optBools[name]
}

// name is the user-facing name of a setting: the directives file and field
// when the value came from there, else what this front door calls it.
func (s Settings) name(setting string) string {
	if field, ok := s.fromDirectives[setting]; ok {
		return s.Directives + ": " + field
	}
	if n, ok := s.Names[setting]; ok {
		return n
	}
	return setting
}

// Renamed gives an input error from below (buildkit, the pipeline), which
// names a setting by its canonical name, the front door's name of it; the
// error keeps its wrapping, and its text says the new name.
func (s Settings) Renamed(err error) error {
	var ie *buildkit.InputError
	if !errors.As(err, &ie) || s.name(ie.Field) == ie.Field {
		return err
	}
	before := ie.Error()
	ie.Field = s.name(ie.Field)
	if err == error(ie) {
		return err
	}
	return &renamedError{msg: strings.Replace(err.Error(), before, ie.Error(), 1), err: err}
}

// renamedError is a wrapped input error whose text was made (fmt.Errorf)
// before its setting was renamed.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// named puts the front door's name of the setting on an input error.
func (s Settings) named(setting string, err error) error {
	var ie *buildkit.InputError
	if errors.As(err, &ie) {
		cp := *ie
		cp.Field = s.name(setting)
		return &cp
	}
	return err
}

// Table is the tier table of every provider here.
func Table() sizing.Table { return sizing.HCloud }

func (s *Settings) given(name string) bool { return s.Given[name] }

// ApplyDirectives fills every setting not given explicitly from the directives file.
func (s *Settings) ApplyDirectives(ctx context.Context) error {
	if s.Directives == "" {
		return nil
	}
	loader := SpecLoader()
	loader.Checkout = s.Checkout
	d, err := loader.LoadDirectives(ctx, s.Directives)
	if err != nil {
		return err
	}
	s.fromDirectives = map[string]string{}
	set := func(name string, dst *string, v string) {
		if !s.given(name) && v != "" {
			*dst = v
			s.fromDirectives[name] = directiveField[name]
		}
	}
	set("workspace", &s.Workspace, d.Workspace)
	set("runner-type", &s.RunnerType, d.RunnerOverride)
	set("state-store", &s.StateStore, d.StateStore)
	set("compute-provider", &s.ComputeProvider, d.ComputeProvider)
	actor := d.CachePolicy.Actor
	if d.CachePolicy.ActorID != "" {
		actor += ":" + d.CachePolicy.ActorID
	}
	set("actor", &s.Actor, actor)
	set("cache-disposition", &s.CacheDisposition, d.CachePolicy.Disposition)
	set("registry", &s.Registry, d.Registry)
	set("registry-provider", &s.RegistryProvider, d.RegistryProvider)
	if !s.given("cache-imports") && len(d.CachePolicy.ExtraImports) > 0 {
		s.CacheImports = d.CachePolicy.ExtraImports
	}
	if !s.given("lamina") && len(d.Lamina) > 0 {
		s.Lamina = d.Lamina
		s.fromDirectives["lamina"] = "lamina"
	}
	if n := d.NatsEvents; n != nil {
		set("nats-url", &s.NatsURL, n.URL)
		set("events-prefix", &s.EventsPrefix, n.Prefix)
	}
	if a := d.Artifact; a != nil {
		if !s.given("tags") && a.Image != "" {
			s.Tags = []string{a.Image}
			s.fromDirectives["tags"] = "artifact.image"
		}
		set("file", &s.File, a.Dockerfile)
		set("target", &s.Target, a.Target)
		set("context", &s.Context, a.Context)
	}
	return nil
}

// directiveField names the BuildDirectives field each setting comes from.
var directiveField = map[string]string{
	"workspace": "workspace", "runner-type": "runner_override", "compute-provider": "compute_provider", "state-store": "state_store",
	"actor": "cache_policy.actor", "cache-disposition": "cache_policy.disposition", "registry": "registry",
	"registry-provider": "registry_provider", "nats-url": "nats_events.url", "events-prefix": "nats_events.prefix",
	"file": "artifact.dockerfile", "target": "artifact.target", "context": "artifact.context",
}

// Resolve applies the directives file, then validates everything into a request.
func (s Settings) Resolve(ctx context.Context) (pipeline.Request, error) {
	if err := s.ApplyDirectives(ctx); err != nil {
		return pipeline.Request{}, err
	}
	return s.Request()
}

// SpecLoader reads specs and directives with the default evaluator.
func SpecLoader() spec.Loader {
	return spec.Loader{Eval: spec.DefaultEvaluator(), Table: Table()}
}

// Request validates the settings and builds the pipeline request.
func (s Settings) Request() (pipeline.Request, error) {
	if s.Context == "" {
		return pipeline.Request{}, &buildkit.InputError{Field: "context", Msg: "no build context given"}
	}
	if err := s.readRegistryPassword(); err != nil {
		return pipeline.Request{}, err
	}
	o, err := s.buildOptions()
	if err != nil {
		return pipeline.Request{}, err
	}
	req := pipeline.Request{Workspace: s.Workspace, RunnerOverride: s.RunnerType, Build: o, Commit: s.Commit, Ref: s.Ref}
	if req.Workspace == "" {
		req.Workspace = DefaultWorkspace(s.Context)
	}
	if s.RunnerType != "" {
		tiers, err := s.Tiers()
		if err != nil {
			return req, err
		}
		t, err := tiers.Lookup(s.RunnerType)
		if err != nil {
			return req, &buildkit.InputError{Field: s.name("runner-type"), Msg: err.Error()}
		}
		req.RunnerOverride = t.Name
	}
	for host, c := range s.Logins {
		if req.Build.RegistryAuth == nil {
			req.Build.RegistryAuth = map[string]buildkit.Credential{}
		}
		req.Build.RegistryAuth[host] = c
	}
	if rule := cache.NameRule(req.Workspace); rule != "" {
		return req, &buildkit.InputError{Field: s.name("workspace"), Value: req.Workspace, Msg: rule}
	}
	if err := s.applyCache(&req); err != nil {
		return req, err
	}
	if err := s.applyLamina(&req); err != nil {
		return req, err
	}
	return req, s.Renamed(req.Validate())
}

// buildOptions parses every list setting into BuildKit's options; an error
// names the setting as the front door calls it.
func (s Settings) buildOptions() (buildkit.Options, error) {
	o := buildkit.Options{
		Checkout: s.Checkout, ContextDir: s.Context, Dockerfile: s.File, Target: s.Target, Tags: s.Tags, Push: s.Push,
		NoCache: s.NoCache, Progress: s.Progress, Platforms: s.Platforms, InsecureRegistries: s.Insecure,
	}
	var err error
	if o.BuildArgs, err = parseMap(s, "build-args", s.BuildArgs); err != nil {
		return o, err
	}
	if o.Labels, err = parseMap(s, "labels", s.Labels); err != nil {
		return o, err
	}
	if o.Secrets, err = parseEach(s, "secrets", s.Secrets, buildkit.ParseSecret); err != nil {
		return o, err
	}
	for _, id := range slices.Sorted(maps.Keys(s.InlineSecrets)) {
		o.Secrets = append(o.Secrets, buildkit.Secret{ID: id, Inline: []byte(s.InlineSecrets[id])})
	}
	if o.SSH, err = parseEach(s, "ssh", s.SSH, buildkit.ParseSSH); err != nil {
		return o, err
	}
	if o.NamedContexts, err = parseEach(s, "build-contexts", s.BuildContexts, buildkit.ParseNamedContext); err != nil {
		return o, err
	}
	if o.Outputs, err = parseEach(s, "outputs", s.Outputs, buildkit.ParseOutput); err != nil {
		return o, err
	}
	if o.Provenance, err = s.provenance(o.Pushes()); err != nil {
		return o, err
	}
	if o.SBOM, err = buildkit.ParseSBOM(s.SBOM, s.SBOMScanner); err != nil {
		return o, err
	}
	if o.CacheFrom, err = parseEach(s, "cache-from", s.CacheFrom, func(x string) (buildkit.CacheEntry, error) { return buildkit.ParseCache("cache-from", x) }); err != nil {
		return o, err
	}
	o.CacheTo, err = parseEach(s, "cache-to", s.CacheTo, func(x string) (buildkit.CacheEntry, error) { return buildkit.ParseCache("cache-to", x) })
	return o, err
}

// parseEach parses every item of a list setting.
func parseEach[T any](s Settings, setting string, items []string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, x := range items {
		v, err := parse(x)
		if err != nil {
			return nil, s.named(setting, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseMap parses NAME=VALUE items.
func parseMap(s Settings, setting string, items []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range items {
		k, v, err := buildkit.ParseKeyValue(setting, kv)
		if err != nil {
			return nil, s.named(setting, err)
		}
		out[k] = v
	}
	return out, nil
}

func (s Settings) applyCache(req *pipeline.Request) error {
	actorText := s.Actor
	if actorText == "" {
		actorText = "ci"
	}
	actor, err := cache.ParseActor(actorText)
	if err != nil {
		return &buildkit.InputError{Field: s.name("actor"), Msg: err.Error()}
	}
	disp, err := cache.ParseDisposition(s.CacheDisposition)
	if err != nil {
		return &buildkit.InputError{Field: s.name("cache-disposition"), Msg: err.Error()}
	}
	prov, err := cache.ParseProvider(s.RegistryProvider)
	if err != nil {
		return &buildkit.InputError{Field: s.name("registry-provider"), Msg: err.Error()}
	}
	req.Actor = actor
	req.Cache = pipeline.CacheSettings{Registry: s.Registry, Provider: prov, Disposition: disp, ExtraImports: s.CacheImports, IgnoreError: s.CacheIgnoreError}
	if s.Registry == "" {
		return nil
	}
	host := s.registryHost()
	req.Cache.Insecure = s.registryInsecure()
	if s.RegistryUsername != "" || s.RegistryPassword != "" {
		if s.RegistryUsername == "" {
			return &buildkit.InputError{Field: s.name("registry-username"), Msg: "needed with a registry password"}
		}
		req.Cache.Auth = cache.Auth{Username: s.RegistryUsername, Password: s.RegistryPassword}
		if req.Build.RegistryAuth == nil {
			req.Build.RegistryAuth = map[string]buildkit.Credential{}
		}
		req.Build.RegistryAuth[host] = buildkit.Credential{Username: s.RegistryUsername, Password: s.RegistryPassword}
	}
	if _, err := cache.NewPlan(cache.Input{Registry: s.Registry, Workspace: req.Workspace, Actor: actor, Disposition: disp, Provider: prov, ExtraImports: s.CacheImports}); err != nil {
		return &buildkit.InputError{Field: s.name("registry"), Value: s.Registry, Msg: err.Error()}
	}
	return nil
}

// DefaultWorkspace names a workspace after a directory or repository name.
func DefaultWorkspace(dirOrRepo string) string {
	base := dirOrRepo
	if abs, err := filepath.Abs(dirOrRepo); err == nil && !strings.Contains(dirOrRepo, "://") {
		base = abs
	}
	if s := pathComponent(filepath.Base(base)); s != "" {
		return s
	}
	return "default"
}

// ActorID makes a login (GitHub, Woodpecker) an actor id: a registry path
// component, lower case, other characters as '-'.
func ActorID(login string) string { return pathComponent(login) }

// pathComponent is s as a valid workspace or actor id (cache.SanitizeName).
func pathComponent(s string) string { return cache.SanitizeName(s) }

// ReadSecretFile reads a password or token from a file, without its trailing newline.
func ReadSecretFile(field, path string) (string, error) {
	b, err := safefile.Read(path, safefile.MaxSecret)
	if err != nil {
		return "", &buildkit.InputError{Field: field, Value: path, Msg: fmt.Sprintf("cannot read: %v", err)}
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// RegistryClient is a client of the settings' cache registry, with their
// credentials (the password file read) and plain HTTP when the registry is
// one of the insecure ones.
func (s Settings) RegistryClient() (cache.Registry, error) {
	if err := s.readRegistryPassword(); err != nil {
		return cache.Registry{}, err
	}
	return cache.Registry{Auth: cache.Auth{Username: s.RegistryUsername, Password: s.RegistryPassword}, Insecure: s.registryInsecure()}, nil
}

// readRegistryPassword takes the registry password from its file, when one is named.
func (s *Settings) readRegistryPassword() error {
	if s.RegistryPasswordFile == "" {
		return nil
	}
	pw, err := ReadSecretFile(s.name("registry-password-file"), s.RegistryPasswordFile)
	s.RegistryPassword = pw
	return err
}

// registryHost is the cache registry's HOST[:PORT]; registryInsecure says
// whether it is one of the plain-HTTP registries.
func (s Settings) registryHost() string {
	host, _, _ := strings.Cut(s.Registry, "/")
	return host
}

func (s Settings) registryInsecure() bool { return slices.Contains(s.Insecure, s.registryHost()) }

// OptionsFromEnv gives every provider setting that declares an environment
// variable, and that no door set, that variable's value from getenv (the
// door's environment: the Action's or the plugin's, tests' included).
func (s *Settings) OptionsFromEnv(getenv func(string) string) {
	for _, d := range compute.DeclaredSettings() {
		if d.Env == "" || d.Secret || s.Option(d.Name) != "" {
			continue
		}
		if v := getenv(d.Env); v != "" {
			s.SetOption(d.Name, v)
		}
	}
}

// provenance is the attestation a registry push gets: the provenance
// setting, or by default mode=max for a public repository's CI builds and
// mode=min for private ones and for sessions (build-push-action's rule).
// A build that pushes nothing gets none.
func (s Settings) provenance(pushes bool) (buildkit.Provenance, error) {
	mode, err := buildkit.ParseProvenance(s.Provenance)
	if err != nil {
		return buildkit.Provenance{}, s.named("provenance", err)
	}
	if !pushes || mode == "" {
		return buildkit.Provenance{}, nil
	}
	if mode == buildkit.ProvenanceAuto {
		mode = "min"
		if s.Public && !strings.HasPrefix(s.Actor, "human:") && !strings.HasPrefix(s.Actor, "agent:") {
			mode = "max"
		}
	}
	return buildkit.Provenance{Mode: mode, Source: s.Source, Revision: s.Commit}, nil
}

// pushes says whether the build pushes an image to a registry, as its
// parsed outputs say (buildkit.Options.Pushes).
func (s Settings) pushes() bool {
	outs, err := parseEach(s, "outputs", s.Outputs, buildkit.ParseOutput)
	return err == nil && buildkit.Options{Push: s.Push, Tags: s.Tags, Outputs: outs}.Pushes()
}

// SigningKey is the cosign key the build's push is signed with (nil: none),
// read from the PEM a door received or the file the CLI named, with
// $COSIGN_PASSWORD. An error names the setting, never the key.
func (s Settings) SigningKey() (*sign.Key, error) {
	if s.SignKey == "" {
		return nil, nil
	}
	if !s.pushes() {
		return nil, &buildkit.InputError{Field: s.name("sign-key"), Msg: "nothing is pushed to sign (-t with --push, or a registry output)"}
	}
	pem := []byte(s.SignKey)
	if !strings.HasPrefix(strings.TrimSpace(s.SignKey), "-----BEGIN") {
		text, err := ReadSecretFile(s.name("sign-key"), s.SignKey)
		if err != nil {
			return nil, err
		}
		pem = []byte(text)
	}
	k, err := sign.LoadKey(pem, []byte(os.Getenv("COSIGN_PASSWORD")))
	if err != nil {
		return nil, &buildkit.InputError{Field: s.name("sign-key"), Msg: err.Error()}
	}
	return k, nil
}
