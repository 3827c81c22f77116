package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/containerd/console"
	"github.com/lian-build/action/internal/frontdoor"
)

// flagSetting maps a flag to the setting it gives (for "flags override directives").
var flagSetting = map[string]string{
	"t": "tags", "tag": "tags", "f": "file", "file": "file", "target": "target", "workspace": "workspace",
	"runner-type": "runner-type", "actor": "actor", "cache-disposition": "cache-disposition", "registry": "registry",
	"registry-provider": "registry-provider", "cache-import": "cache-imports", "nats-url": "nats-url",
	"events-prefix": "events-prefix", "provider": "compute-provider",
}

// cliNames are the flags that give each setting, for error messages.
var cliNames = map[string]string{
	"build-args": "--build-arg", "labels": "--label", "secrets": "--secret", "ssh": "--ssh", "build-contexts": "--build-context",
	"outputs": "--output", "cache-from": "--cache-from", "cache-to": "--cache-to", "runner-type": "--runner-type", "actor": "--actor",
	"cache-disposition": "--cache-disposition", "registry": "--registry", "registry-provider": "--registry-provider",
	"registry-username": "--registry-username", "file": "--file", "progress": "--progress", "push": "--push",
	"context": "build context", "compute-provider": "--provider", "local-tier-memory": "--local-tier-memory",
	"state-dir": "--state-dir", "workspace": "--workspace", "platforms": "--platform", "tags": "-t/--tag", "target": "--target",
}

type buildFlags struct {
	s                                frontdoor.Settings
	reportJSON, passwordFile         string
	quiet                            bool
	tags, args, labels, secrets, ssh listFlag
	platforms, contexts, outputs     listFlag
	cacheFrom, cacheTo, cacheImports listFlag
}

func (b *buildFlags) register(fs *flag.FlagSet) {
	s := &b.s
	fs.StringVar(&s.File, "f", "", "Dockerfile (default CONTEXT/Dockerfile)")
	fs.StringVar(&s.File, "file", "", "Dockerfile (default CONTEXT/Dockerfile)")
	fs.Var(&b.tags, "t", "image name and tag (repeatable)")
	fs.Var(&b.tags, "tag", "image name and tag (repeatable)")
	fs.BoolVar(&s.Push, "push", false, "push the tagged image")
	fs.Var(&b.outputs, "output", "output: type=image|registry|oci|docker|local|tar,… (repeatable)")
	fs.Var(&b.outputs, "o", "shorthand for --output")
	fs.Var(&b.args, "build-arg", "NAME=VALUE build argument (repeatable)")
	fs.Var(&b.labels, "label", "NAME=VALUE image label (repeatable)")
	fs.StringVar(&s.Target, "target", "", "target stage")
	fs.Var(&b.secrets, "secret", "id=NAME,src=PATH | id=NAME,env=VAR (repeatable)")
	fs.Var(&b.ssh, "ssh", "default | ID=SOCKET|KEY (repeatable)")
	fs.Var(&b.platforms, "platform", "target platform (repeatable)")
	fs.Var(&b.contexts, "build-context", "NAME=DIR | NAME=oci-layout://PATH[:TAG|@DIGEST] | NAME=docker-image://REF (repeatable)")
	fs.Var(&b.cacheFrom, "cache-from", "extra cache import, e.g. type=registry,ref=R (repeatable)")
	fs.Var(&b.cacheTo, "cache-to", "extra cache export, e.g. type=registry,ref=R,mode=max (repeatable)")
	fs.BoolVar(&s.NoCache, "no-cache", false, "do not use the cache")
	fs.StringVar(&s.Progress, "progress", "auto", "progress output: auto, tty, plain, quiet, rawjson")
	fs.StringVar(&b.reportJSON, "report-json", "", "write the build report as JSON to PATH")
	fs.StringVar(&s.RunnerType, "runner-type", "", "runner tier, overriding every sizing rule (cax11, cax21, cax31, cax41)")
	fs.StringVar(&s.Workspace, "workspace", "", "workspace name (default: the context directory's name)")
	fs.BoolVar(&b.quiet, "q", false, "print only the image digest on success")
	fs.StringVar(&s.Directives, "directives", "", "BuildDirectives file (.ncl); flags override it")
	fs.StringVar(&s.Actor, "actor", "ci", "who builds: ci, ci_aux, human:ID or agent:ID (picks the cache namespaces)")
	fs.StringVar(&s.CacheDisposition, "cache-disposition", "export", "session cache: export, discard or rollback")
	fs.StringVar(&s.Registry, "registry", envOr("LIAN_REGISTRY", ""), "cache registry HOST[:PORT][/PREFIX]: ci/<ws> and dev/<id>-<ws> live there ($LIAN_REGISTRY)")
	fs.StringVar(&s.RegistryProvider, "registry-provider", "generic", "registry product: zot, harbor, ghcr, dockerhub or generic")
	fs.StringVar(&s.RegistryUsername, "registry-username", envOr("LIAN_REGISTRY_USERNAME", ""), "registry user ($LIAN_REGISTRY_USERNAME)")
	fs.StringVar(&b.passwordFile, "registry-password-file", "", "file holding the registry password or token (else $LIAN_REGISTRY_PASSWORD)")
	fs.Var(&b.cacheImports, "cache-import", "extra cache import, e.g. a lamina base layer ref (repeatable)")
	fs.BoolVar(&s.CacheIgnoreError, "cache-ignore-error", false, "a failed cache export does not fail the build")
	fs.StringVar(&s.EventsPrefix, "events-prefix", "lian-build", "NATS subject prefix of lifecycle events")
	registerProvider(fs, s)
	registerHistory(fs, s)
}

// settings completes the settings from the parsed flags, the environment and the directives.
func (b *buildFlags) settings(ctx context.Context, fs *flag.FlagSet, pos []string) (frontdoor.Settings, error) {
	s := b.s
	s.Tags, s.BuildArgs, s.Labels, s.Secrets, s.SSH = b.tags, b.args, b.labels, b.secrets, b.ssh
	s.Platforms, s.BuildContexts, s.Outputs = b.platforms, b.contexts, b.outputs
	s.CacheFrom, s.CacheTo, s.CacheImports = b.cacheFrom, b.cacheTo, b.cacheImports
	s.Given, s.Names = map[string]bool{}, cliNames
	fs.Visit(func(f *flag.Flag) {
		if name, ok := flagSetting[f.Name]; ok {
			s.Given[name] = true
		}
	})
	s.RegistryPassword = os.Getenv("LIAN_REGISTRY_PASSWORD")
	if b.passwordFile != "" {
		pw, err := frontdoor.ReadSecretFile("--registry-password-file", b.passwordFile)
		if err != nil {
			return s, err
		}
		s.RegistryPassword = pw
	}
	if len(pos) > 1 {
		return s, usageErr("build takes one CONTEXT directory, got %d arguments", len(pos))
	}
	if len(pos) == 1 {
		s.Context = pos[0]
		s.Given["context"] = true
	}
	if err := s.ApplyDirectives(ctx); err != nil {
		return s, err
	}
	if s.Context == "" {
		return s, usageErr("build takes exactly one CONTEXT directory (or artifact.context in --directives)")
	}
	return s, nil
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := newFlagSet("lian-build build", stderr)
	var b buildFlags
	b.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: lian-build build [flags] CONTEXT")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagErr(err)
	}
	s, err := b.settings(ctx, fs, pos)
	if err != nil {
		return err
	}
	req, err := s.Request()
	if err != nil {
		return err
	}
	if err := checkProgress(s.Progress, stderr); err != nil {
		return err
	}
	if !req.Build.ResultKept() {
		fmt.Fprintln(stderr, "lian-build: warning: no output (--push with -t, or --output): the result stays only in the runner's cache, which is destroyed after the build")
	}
	var progress io.Writer = stderr
	if s.Progress == "quiet" || b.quiet {
		progress = nil
	}
	res, runErr := s.Build(ctx, req, frontdoor.BuildOptions{Logger: log, Progress: progress})
	if res.BuildID == "" {
		return runErr
	}
	if b.reportJSON != "" {
		if err := writeJSON(b.reportJSON, res); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if b.quiet {
		if runErr == nil && res.Digest != "" {
			fmt.Fprintln(stdout, res.Digest)
		}
	} else {
		frontdoor.WriteReport(stdout, res)
	}
	return runErr
}

// checkProgress refuses --progress tty when stderr is not a terminal (the
// display would fail after a runner was spawned).
func checkProgress(mode string, stderr io.Writer) error {
	if mode != "tty" {
		return nil
	}
	if f, ok := stderr.(*os.File); ok {
		if _, err := console.ConsoleFromFile(f); err == nil {
			return nil
		}
	}
	return usageErr("--progress tty: stderr is not a terminal (use auto, plain, quiet or rawjson)")
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--report-json: %w", err)
	}
	return nil
}
