package frontdoor

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/metrics"
)

// Kind is what a setting's value is; each front door reads a kind the way
// its platform writes it.
type Kind string

const (
	// KindText is one string.
	KindText Kind = "text"
	// KindBool is true or false.
	KindBool Kind = "bool"
	// KindList is several values: a repeatable flag, newline- or
	// comma-separated in an Action input, comma-joined in Woodpecker.
	KindList Kind = "list"
	// KindLines is several values that contain commas themselves: a
	// repeatable flag, one per line in an Action input, comma-joined in
	// Woodpecker.
	KindLines Kind = "lines"
	// KindMap is NAME=VALUE pairs: a repeatable flag, one per line in an
	// Action input, a map (or a list of NAME=VALUE) in Woodpecker.
	KindMap Kind = "map"
	// KindSecret is a text that is masked and never shown.
	KindSecret Kind = "secret"
)

// Setting is one setting of a build, declared once for every front door.
type Setting struct {
	Name    string // canonical name: the key of Settings.Given, used in errors
	Flag    string // CLI flag without dashes ("" when the CLI has none)
	Short   string // CLI shorthand ("t")
	Env     string // CLI: environment variable that gives the flag's default
	Input   string // GitHub Action input ("" when the Action has none)
	Key     string // Woodpecker `settings:` key ("" when the plugin has none)
	Kind    Kind
	Default string // the CLI's and the Action's default
	Help    string
	// Field is where a value goes in Settings: *string for text and secret,
	// *bool, *[]string for lists, lines and maps. Nil: the front doors read
	// the setting themselves (it is declared here for help, action.yml, the
	// README and suggestions).
	Field func(*Settings) any
	// Topic is the section of help that lists it.
	Topic string
	// Choices are the values it takes, when they are a fixed set: shell
	// completion, an enum in the gateway's configuration schema.
	Choices func() []string
	// Comma: a text whose value is a comma-separated list.
	Comma bool
	// Bare is the value of the CLI flag given alone (`--sbom` is
	// `--sbom=true`, as buildx's); a value then needs the = form.
	Bare string
}

// SettingsTable is every setting of a build: the core settings, with the
// settings every registered compute provider declares (compute.Setting)
// before the Woodpecker plugin's own. Adding a core setting is one entry in
// coreSettings plus its effect in Settings.Request; a provider's settings
// are its package's alone.
func SettingsTable() []Setting {
	core := coreSettings()
	at := len(core)
	for i, st := range core {
		if st.Name == "repo" {
			at = i
		}
	}
	out := append(append([]Setting(nil), core[:at]...), providerSettings()...)
	return append(out, core[at:]...)
}

// providerSettings are the registered providers' declared settings as the
// front doors take them: a secret as a masked input and a NAME-file flag,
// a machine's path as a flag only.
func providerSettings() []Setting {
	var out []Setting
	for _, d := range compute.DeclaredSettings() {
		st := Setting{Name: d.Name, Flag: d.Name, Env: d.Env, Input: d.Name, Key: strings.ReplaceAll(d.Name, "-", "_"),
			Kind: KindText, Default: d.Default, Help: d.Help, Field: optionField(d.Name, d.Bool), Topic: ProviderTopic(d.Provider), Comma: d.List}
		switch {
		case d.Secret:
			st.Flag, st.Env, st.Kind, st.Default = "", "", KindSecret, ""
			file := Setting{Name: d.Name + "-file", Flag: d.Name + "-file", Kind: KindText, Topic: st.Topic,
				Help: "file holding " + d.Name + " (read when the command starts; never shown)", Field: optionField(d.Name+"-file", false)}
			out = append(out, st, file)
			continue
		case d.Machine:
			st.Input, st.Key = "", ""
		case d.Bool:
			st.Kind = KindBool
			if st.Default == "" {
				st.Default = "false"
			}
		}
		out = append(out, st)
	}
	return out
}

// ProviderTopic is the help topic of a provider's settings.
func ProviderTopic(provider string) string { return "Provider " + provider }

// optionField is where a provider setting's value goes: the settings'
// option store, by name.
func optionField(name string, isBool bool) func(*Settings) any {
	if isBool {
		return func(s *Settings) any { return s.optionBool(name) }
	}
	return func(s *Settings) any { return s.optionPtr(name) }
}

// coreSettings are the settings every build has, whatever its provider.
func coreSettings() []Setting {
	str := func(f func(*Settings) *string) func(*Settings) any { return func(s *Settings) any { return f(s) } }
	lst := func(f func(*Settings) *[]string) func(*Settings) any { return func(s *Settings) any { return f(s) } }
	bl := func(f func(*Settings) *bool) func(*Settings) any { return func(s *Settings) any { return f(s) } }
	return slices.Concat(
		topic(TopicBuild, []Setting{
			{Name: "context", Input: "context", Key: "context", Kind: KindText, Default: ".", Help: "build context directory (the CLI takes it as its argument)", Field: str(func(s *Settings) *string { return &s.Context })},
			{Name: "file", Flag: "file", Short: "f", Input: "file", Key: "dockerfile", Kind: KindText, Help: "Dockerfile (default CONTEXT/Dockerfile)", Field: str(func(s *Settings) *string { return &s.File })},
			{Name: "tags", Flag: "tag", Short: "t", Input: "tags", Key: "tags", Kind: KindList, Help: "image references (Woodpecker: with repo, tags are appended to it)", Field: lst(func(s *Settings) *[]string { return &s.Tags })},
			{Name: "push", Flag: "push", Input: "push", Key: "push", Kind: KindBool, Default: "false", Help: "push the tagged image (Woodpecker: pushes unless dry_run)", Field: bl(func(s *Settings) *bool { return &s.Push })},
			{Name: "build-args", Flag: "build-arg", Input: "build-args", Key: "build_args", Kind: KindMap, Help: "build arguments NAME=VALUE", Field: lst(func(s *Settings) *[]string { return &s.BuildArgs })},
			{Name: "labels", Flag: "label", Input: "labels", Key: "labels", Kind: KindMap, Help: "image labels NAME=VALUE", Field: lst(func(s *Settings) *[]string { return &s.Labels })},
			{Name: "secrets", Flag: "secret", Input: "secrets", Key: "secrets", Kind: KindSecret, Help: "build secrets for RUN --mount=type=secret (CLI: id=ID,src=PATH|env=VAR; Action: ID=VALUE lines; Woodpecker: a map id → value)", Field: lst(func(s *Settings) *[]string { return &s.Secrets })},
			{Name: "secret-files", Input: "secret-files", Kind: KindLines, Help: "build secrets from files, ID=PATH (their contents are masked)"},
			{Name: "secret-envs", Input: "secret-envs", Kind: KindLines, Help: "build secrets from environment variables, ID=VARIABLE (their values are masked)"},
			{Name: "ssh", Flag: "ssh", Input: "ssh", Key: "ssh", Kind: KindLines, Help: "SSH agent sockets or keys to forward: default, or ID=SOCKET|KEY", Field: lst(func(s *Settings) *[]string { return &s.SSH })},
			{Name: "target", Flag: "target", Input: "target", Key: "target", Kind: KindText, Help: "target stage (must be a stage of the Dockerfile)", Field: str(func(s *Settings) *string { return &s.Target })},
			{Name: "platforms", Flag: "platform", Input: "platforms", Key: "platforms", Kind: KindList, Help: "target platforms OS/ARCH[/VARIANT]", Field: lst(func(s *Settings) *[]string { return &s.Platforms })},
			{Name: "provenance", Flag: "provenance", Input: "provenance", Key: "provenance", Kind: KindText, Bare: "true", Help: "SLSA provenance attestation of a pushed image: false, true (mode=max for a public repository's CI builds, mode=min otherwise: the default), mode=min or mode=max", Field: str(func(s *Settings) *string { return &s.Provenance })},
			{Name: "sbom", Flag: "sbom", Input: "sbom", Key: "sbom", Kind: KindText, Bare: "true", Help: "SPDX SBOM attestation of the image: false (the default), true (made by sbom-scanner) or generator=IMAGE@sha256:…; build arguments BUILDKIT_SBOM_SCAN_CONTEXT=true and BUILDKIT_SBOM_SCAN_STAGE=true scan the context and stages too", Field: str(func(s *Settings) *string { return &s.SBOM })},
			{Name: "sbom-scanner", Flag: "sbom-scanner", Env: "LIAN_SBOM_SCANNER", Input: "sbom-scanner", Key: "sbom_scanner", Kind: KindText, Help: "the SBOM scanner image, pinned by digest (REPOSITORY@sha256:…): made offline from syft by lian-build sbom scanner REPOSITORY", Field: str(func(s *Settings) *string { return &s.SBOMScanner })},
			{Name: "sign-key", Flag: "sign-key", Input: "sign-key", Key: "sign_key", Kind: KindSecret, Help: "cosign private key that signs the pushed image (its index and each platform's manifest): CLI, a FILE; Action input and Woodpecker secret, the PEM (masked); its password from $COSIGN_PASSWORD", Field: str(func(s *Settings) *string { return &s.SignKey })},
			{Name: "emulate-platforms", Flag: "emulate-platforms", Input: "emulate-platforms", Key: "emulate_platforms", Kind: KindBool, Default: "false", Help: "build the platforms the provider's machines do not run natively through QEMU on the runner (slower; refused without it)", Field: bl(func(s *Settings) *bool { return &s.EmulatePlatforms })},
			{Name: "build-contexts", Flag: "build-context", Input: "build-contexts", Key: "build_contexts", Kind: KindLines, Help: "named contexts NAME=DIR|oci-layout://PATH[:TAG|@DIGEST]|docker-image://REF", Field: lst(func(s *Settings) *[]string { return &s.BuildContexts })},
			{Name: "outputs", Flag: "output", Short: "o", Input: "outputs", Kind: KindLines, Help: "outputs in buildx syntax: type=image|registry|oci|docker|local|tar,…", Field: lst(func(s *Settings) *[]string { return &s.Outputs })},
			{Name: "no-cache", Flag: "no-cache", Input: "no-cache", Key: "no_cache", Kind: KindBool, Default: "false", Help: "do not use the cache", Field: bl(func(s *Settings) *bool { return &s.NoCache })},
			{Name: "progress", Flag: "progress", Kind: KindText, Default: "auto", Help: "progress output: auto, tty, plain, quiet, rawjson (the Action and the plugin: plain)", Choices: fixed(buildkit.ProgressModes), Field: str(func(s *Settings) *string { return &s.Progress })},
			{Name: "directives", Flag: "directives", Input: "directives", Key: "directives", Kind: KindText, Help: "BuildDirectives file (.ncl); explicit settings override it", Field: str(func(s *Settings) *string { return &s.Directives })},
			{Name: "workspace", Flag: "workspace", Input: "workspace", Key: "workspace", Kind: KindText, Help: "workspace for cache namespaces, metrics and events (default: the directory's or repository's name)", Field: str(func(s *Settings) *string { return &s.Workspace })},
		}),
		topic(TopicRunner, []Setting{
			{Name: "runner-type", Flag: "runner-type", Input: "runner-type", Key: "runner_type", Kind: KindText, Help: "runner tier overriding every sizing rule (cax11, cax21, cax31, cax41)", Choices: Table().Names, Field: str(func(s *Settings) *string { return &s.RunnerType })},
			{Name: "compute-provider", Flag: "provider", Input: "compute-provider", Key: "compute_provider", Kind: KindText, Default: "local", Help: "compute provider: local, docker, hcloud, proxmox or vm-pool", Choices: compute.Names, Field: str(func(s *Settings) *string { return &s.ComputeProvider })},
		}),
		topic(TopicCache, []Setting{
			{Name: "actor", Flag: "actor", Input: "actor", Key: "actor", Kind: KindText, Help: "who builds: ci, ci_aux, human:ID or agent:ID (default: ci; the Action and the plugin: human:<author> on pull requests)", Field: str(func(s *Settings) *string { return &s.Actor })},
			{Name: "cache-disposition", Flag: "cache-disposition", Input: "cache-disposition", Key: "cache_disposition", Kind: KindText, Default: "export", Help: "session cache: export, discard or rollback", Choices: fixed(cache.Dispositions), Field: str(func(s *Settings) *string { return &s.CacheDisposition })},
			{Name: "cache-from", Flag: "cache-from", Input: "cache-from", Key: "cache_from", Kind: KindLines, Help: "extra cache imports, e.g. type=registry,ref=R (Woodpecker: refused, set registry)", Field: lst(func(s *Settings) *[]string { return &s.CacheFrom })},
			{Name: "cache-to", Flag: "cache-to", Input: "cache-to", Key: "cache_to", Kind: KindLines, Help: "extra cache exports, e.g. type=registry,ref=R,mode=max (Woodpecker: refused, set registry)", Field: lst(func(s *Settings) *[]string { return &s.CacheTo })},
			{Name: "cache-imports", Flag: "cache-import", Input: "cache-imports", Key: "cache_imports", Kind: KindList, Help: "extra cache imports, e.g. lamina base layers", Field: lst(func(s *Settings) *[]string { return &s.CacheImports })},
			{Name: "cache-ignore-error", Flag: "cache-ignore-error", Kind: KindBool, Default: "false", Help: "a failed cache export does not fail the build", Field: bl(func(s *Settings) *bool { return &s.CacheIgnoreError })},
			{Name: "lamina", Flag: "lamina", Input: "lamina", Key: "lamina", Kind: KindList, Help: "lamina layers to build on, NAME[:TAG] (default latest) under the registry's lamina/ path: FROM lamina/NAME, pinned by digest when the build starts, its ci/ cache imported", Field: lst(func(s *Settings) *[]string { return &s.Lamina })},
			{Name: "state-store", Flag: "state-store", Env: "LIAN_STATE_STORE", Input: "state-store", Key: "state_store", Kind: KindText, Help: "warm runner state per cache namespace: local provider, a directory on btrfs or XFS or an image file PATH.img that lian-build creates and mounts; hcloud, volumes (a Hetzner Volume per namespace and location, state-store-size each); vm-pool, volumes too (the pool VMs keep each namespace's state on their own disks)", Field: str(func(s *Settings) *string { return &s.StateStore })},
			{Name: "state-store-size", Flag: "state-store-size", Input: "state-store-size", Key: "state_store_size", Kind: KindText, Default: "20GiB", Help: "size of a new state-store image (sparse)", Field: str(func(s *Settings) *string { return &s.StateStoreSize })},
			{Name: "state-max", Flag: "state-max", Input: "state-max", Key: "state_max", Kind: KindText, Help: "total size of the committed states; the least recently used namespaces are evicted beyond it, and each is pruned to it before a commit", Field: str(func(s *Settings) *string { return &s.StateMax })},
		}),
		topic(TopicRegistry, []Setting{
			{Name: "registry", Flag: "registry", Env: "LIAN_REGISTRY", Input: "registry", Key: "registry", Kind: KindText, Help: "cache registry HOST[:PORT][/PREFIX] holding ci/<workspace> and dev/<actor>-<workspace>", Field: str(func(s *Settings) *string { return &s.Registry })},
			{Name: "registry-provider", Flag: "registry-provider", Input: "registry-provider", Key: "registry_provider", Kind: KindText, Default: "generic", Help: "registry product: zot, harbor, ghcr, dockerhub or generic", Choices: fixed(cache.Providers), Field: str(func(s *Settings) *string { return &s.RegistryProvider })},
			{Name: "registry-username", Flag: "registry-username", Env: "LIAN_REGISTRY_USERNAME", Input: "registry-username", Key: "registry_username", Kind: KindText, Help: "registry user", Field: str(func(s *Settings) *string { return &s.RegistryUsername })},
			{Name: "registry-password", Input: "registry-password", Key: "registry_password", Kind: KindSecret, Help: "registry password or token (CLI: --registry-password-file or $LIAN_REGISTRY_PASSWORD)", Field: str(func(s *Settings) *string { return &s.RegistryPassword })},
			{Name: "registry-password-file", Flag: "registry-password-file", Kind: KindText, Help: "file holding the registry password or token", Field: str(func(s *Settings) *string { return &s.RegistryPasswordFile })},
			{Name: "insecure-registries", Flag: "insecure-registry", Input: "insecure-registries", Key: "insecure_registries", Kind: KindList, Help: "HOST:PORT registries reached over plain HTTP", Field: lst(func(s *Settings) *[]string { return &s.Insecure })},
		}),
		topic(TopicEvents, []Setting{
			{Name: "nats-url", Flag: "nats-url", Env: "LIAN_NATS_URL", Input: "nats-url", Key: "nats_url", Kind: KindText, Help: "NATS server: lifecycle events and the shared P95 history", Field: str(func(s *Settings) *string { return &s.NatsURL })},
			{Name: "events-prefix", Flag: "events-prefix", Input: "events-prefix", Key: "events_prefix", Kind: KindText, Default: "lian-build", Help: "NATS subject prefix of lifecycle events", Field: str(func(s *Settings) *string { return &s.EventsPrefix })},
			{Name: "metrics-dir", Flag: "metrics-dir", Env: "LIAN_METRICS_DIR", Kind: KindText, Default: metrics.DefaultDir, Help: "P95 history directory when NATS is not used", Field: str(func(s *Settings) *string { return &s.MetricsDir })},
		}),
		topic(TopicWoodpecker, []Setting{
			{Name: "repo", Key: "repo", Kind: KindText, Help: "image repository the tags are appended to (as the buildx plugin)"},
			{Name: "dry-run", Key: "dry_run", Kind: KindBool, Help: "build without pushing"},
			{Name: "logins", Key: "logins", Kind: KindSecret, Help: "registry credentials: a list of {registry, username, password}"},
		}),
	)
}

// Help topics: the sections of a door's help that list the settings.
const (
	TopicBuild      = "Build"
	TopicRunner     = "Runner"
	TopicCache      = "Cache and state"
	TopicRegistry   = "Registry"
	TopicEvents     = "Events and history"
	TopicWoodpecker = "Woodpecker"
)

// topic puts settings under one help topic.
func topic(name string, settings []Setting) []Setting {
	for i := range settings {
		settings[i].Topic = name
	}
	return settings
}

func fixed(choices []string) func() []string { return func() []string { return choices } }

// ErrNotBool is a bool setting whose text is not true or false.
var ErrNotBool = errors.New("want true or false")

// Assign sets the setting's field in s from the text a front door received;
// split turns the text of a list, lines or map setting into its items, the
// way that door writes them. A bool that is not one is ErrNotBool.
func (st Setting) Assign(s *Settings, text string, split func(Kind, string) ([]string, error)) error {
	switch p := st.Field(s).(type) {
	case *string:
		*p = text
	case *bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return ErrNotBool
		}
		*p = b
	case *[]string:
		items, err := split(st.Kind, text)
		if err != nil {
			return err
		}
		*p = items
	}
	return nil
}

// CLIName is how the CLI names a setting in errors: "--build-arg", "-t/--tag".
func (s Setting) CLIName() string {
	switch {
	case s.Flag == "":
		return s.Name
	case s.Short != "":
		return "-" + s.Short + "/--" + s.Flag
	}
	return "--" + s.Flag
}

// Names maps each setting to what one front door calls it, for errors.
func Names(table []Setting, door func(Setting) string) map[string]string {
	out := map[string]string{}
	for _, s := range table {
		if n := door(s); n != "" {
			out[s.Name] = n
		}
	}
	return out
}

// MarkdownTable is the README's table of settings.
func MarkdownTable(table []Setting) string {
	var b strings.Builder
	b.WriteString("| Setting | CLI | Action input | Woodpecker key | Kind | Default | What it does |\n|---|---|---|---|---|---|---|\n")
	code := func(s string) string {
		if s == "" {
			return "—"
		}
		return "`" + s + "`"
	}
	for _, s := range table {
		flag := ""
		if s.Flag != "" {
			flag = s.CLIName()
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", s.Name, code(flag), code(s.Input), code(s.Key), s.Kind, code(s.Default), strings.ReplaceAll(s.Help, "|", "\\|"))
	}
	return b.String()
}

// ActionInputs is the inputs: block of action.yml.
func ActionInputs(table []Setting) string {
	var b strings.Builder
	b.WriteString("inputs:\n")
	for _, s := range table {
		if s.Input == "" {
			continue
		}
		help := strings.ToUpper(s.Help[:1]) + s.Help[1:]
		if s.Kind == KindSecret {
			help += " (masked)"
		}
		fmt.Fprintf(&b, "  %s:\n    description: %q\n", s.Input, help)
		if s.Default != "" {
			fmt.Fprintf(&b, "    default: %q\n", s.Default)
		}
	}
	return b.String()
}

// DoorNames are the names one door knows, sorted: for "did you mean".
func DoorNames(table []Setting, door func(Setting) string) []string {
	var out []string
	for _, s := range table {
		if n := door(s); n != "" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
