package cli

import (
	"flag"
	"fmt"
	"github.com/lian-build/action/internal/buildkit"
	"os"
	"slices"
	"strings"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/spec"
)

// cacheFlags: who builds and where the registry cache lives.
type cacheFlags struct {
	actor, disposition, registry, provider string
	username, passwordFile                 string
	extraImports                           listFlag
	ignoreError                            bool
	eventsPrefix                           string
}

func (c *cacheFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.actor, "actor", "ci", "who builds: ci, ci_aux, human:ID or agent:ID (picks the cache namespaces)")
	fs.StringVar(&c.disposition, "cache-disposition", "export", "session cache: export, discard or rollback")
	fs.StringVar(&c.registry, "registry", envOr("LIAN_REGISTRY", ""), "cache registry HOST[:PORT][/PREFIX]: ci/<ws> and dev/<id>-<ws> live there ($LIAN_REGISTRY)")
	fs.StringVar(&c.provider, "registry-provider", "generic", "registry product: zot, harbor, ghcr, dockerhub or generic")
	fs.StringVar(&c.username, "registry-username", envOr("LIAN_REGISTRY_USERNAME", ""), "registry user ($LIAN_REGISTRY_USERNAME)")
	fs.StringVar(&c.passwordFile, "registry-password-file", "", "file holding the registry password or token (else $LIAN_REGISTRY_PASSWORD)")
	fs.Var(&c.extraImports, "cache-import", "extra cache import, e.g. a lamina base layer ref (repeatable)")
	fs.BoolVar(&c.ignoreError, "cache-ignore-error", false, "a failed cache export does not fail the build")
	fs.StringVar(&c.eventsPrefix, "events-prefix", "lian-build", "NATS subject prefix of lifecycle events")
}

// fromDirectives fills what the command line left unset.
func (c *cacheFlags) fromDirectives(d spec.Directives, set map[string]bool) {
	if !set["actor"] {
		c.actor = d.CachePolicy.Actor
		if d.CachePolicy.ActorID != "" {
			c.actor += ":" + d.CachePolicy.ActorID
		}
	}
	if !set["cache-disposition"] && d.CachePolicy.Disposition != "" {
		c.disposition = d.CachePolicy.Disposition
	}
	if !set["registry"] && d.Registry != "" {
		c.registry = d.Registry
	}
	if !set["registry-provider"] && d.RegistryProvider != "" {
		c.provider = d.RegistryProvider
	}
	if !set["cache-import"] {
		c.extraImports = d.CachePolicy.ExtraImports
	}
	if !set["events-prefix"] && d.NatsEvents != nil && d.NatsEvents.Prefix != "" {
		c.eventsPrefix = d.NatsEvents.Prefix
	}
}

// apply validates the settings and puts them on the request.
func (c *cacheFlags) apply(req *pipeline.Request, insecure []string) error {
	actor, err := cache.ParseActor(c.actor)
	if err != nil {
		return usageErr("--actor: %v", err)
	}
	disp, err := cache.ParseDisposition(c.disposition)
	if err != nil {
		return usageErr("--cache-disposition: %v", err)
	}
	prov, err := cache.ParseProvider(c.provider)
	if err != nil {
		return usageErr("--registry-provider: %v", err)
	}
	req.Actor = actor
	req.Cache = pipeline.CacheSettings{
		Registry: c.registry, Provider: prov, Disposition: disp, ExtraImports: c.extraImports,
		IgnoreError: c.ignoreError,
	}
	if c.registry == "" {
		return nil
	}
	host, _, _ := strings.Cut(c.registry, "/")
	req.Cache.Insecure = slices.Contains(insecure, host)
	pw := os.Getenv("LIAN_REGISTRY_PASSWORD")
	if c.passwordFile != "" {
		b, err := os.ReadFile(c.passwordFile)
		if err != nil {
			return usageErr("--registry-password-file: %v", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	if c.username != "" || pw != "" {
		if c.username == "" {
			return usageErr("--registry-username is needed with a registry password")
		}
		req.Cache.Auth = cache.Auth{Username: c.username, Password: pw}
		if req.Build.RegistryAuth == nil {
			req.Build.RegistryAuth = map[string]buildkitCredential{}
		}
		req.Build.RegistryAuth[host] = buildkitCredential{Username: c.username, Password: pw}
	}
	if _, err := cache.NewPlan(cache.Input{Registry: c.registry, Workspace: req.Workspace, Actor: actor, Disposition: disp, Provider: prov, ExtraImports: c.extraImports}); err != nil {
		return usageErr("%v", fmt.Errorf("cache: %w", err))
	}
	return nil
}

type buildkitCredential = buildkit.Credential
