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

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/events"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/spec"
)

// buildFlags are `lian-build build`'s flags, named like docker buildx build.
type buildFlags struct {
	file, target, progress, reportJSON, runnerType, workspace string
	directives                                                string
	tags, buildArgs, labels, secrets, ssh, platforms          listFlag
	contexts, outputs, cacheFrom, cacheTo                     listFlag
	push, noCache, quiet                                      bool
	provider                                                  providerFlags
	cache                                                     cacheFlags
	history                                                   historyFlags

	contextFromDirectives string
}

// applyDirectives fills every setting the command line left unset from the
// directives file: flags override directives.
func (b *buildFlags) applyDirectives(ctx context.Context, specs spec.Loader, fs *flag.FlagSet) error {
	if b.directives == "" {
		return nil
	}
	d, err := specs.LoadDirectives(ctx, b.directives)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["workspace"] {
		b.workspace = d.Workspace
	}
	b.cache.fromDirectives(d, set)
	if !set["nats-url"] && d.NatsEvents != nil {
		b.history.natsURL = d.NatsEvents.URL
	}
	if !set["runner-type"] && d.RunnerOverride != "" {
		b.runnerType = d.RunnerOverride
	}
	if a := d.Artifact; a != nil {
		if !set["t"] && !set["tag"] && a.Image != "" {
			b.tags = listFlag{a.Image}
		}
		if !set["f"] && !set["file"] {
			b.file = a.Dockerfile
		}
		if !set["target"] {
			b.target = a.Target
		}
		b.contextFromDirectives = a.Context
	}
	return nil
}

func (b *buildFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.file, "f", "", "Dockerfile (default CONTEXT/Dockerfile)")
	fs.StringVar(&b.file, "file", "", "Dockerfile (default CONTEXT/Dockerfile)")
	fs.Var(&b.tags, "t", "image name and tag (repeatable)")
	fs.Var(&b.tags, "tag", "image name and tag (repeatable)")
	fs.BoolVar(&b.push, "push", false, "push the tagged image")
	fs.Var(&b.outputs, "output", "output: type=image|registry|oci|docker|local|tar,… (repeatable)")
	fs.Var(&b.outputs, "o", "shorthand for --output")
	fs.Var(&b.buildArgs, "build-arg", "NAME=VALUE build argument (repeatable)")
	fs.Var(&b.labels, "label", "NAME=VALUE image label (repeatable)")
	fs.StringVar(&b.target, "target", "", "target stage")
	fs.Var(&b.secrets, "secret", "id=NAME,src=PATH | id=NAME,env=VAR (repeatable)")
	fs.Var(&b.ssh, "ssh", "default | ID=SOCKET|KEY (repeatable)")
	fs.Var(&b.platforms, "platform", "target platform (repeatable)")
	fs.Var(&b.contexts, "build-context", "NAME=DIR | NAME=oci-layout://PATH[:TAG|@DIGEST] | NAME=docker-image://REF (repeatable)")
	fs.Var(&b.cacheFrom, "cache-from", "cache import, e.g. type=registry,ref=R (repeatable)")
	fs.Var(&b.cacheTo, "cache-to", "cache export, e.g. type=registry,ref=R,mode=max (repeatable)")
	fs.BoolVar(&b.noCache, "no-cache", false, "do not use the cache")
	fs.StringVar(&b.progress, "progress", "auto", "progress output: auto, tty, plain, quiet, rawjson")
	fs.StringVar(&b.reportJSON, "report-json", "", "write the build report as JSON to PATH")
	fs.StringVar(&b.runnerType, "runner-type", "", "runner tier, overriding every sizing rule (cax11, cax21, cax31, cax41)")
	fs.StringVar(&b.workspace, "workspace", "", "workspace name (default: the context directory's name)")
	fs.BoolVar(&b.quiet, "q", false, "print only the image digest on success")
	fs.StringVar(&b.directives, "directives", "", "BuildDirectives file (.ncl); flags override it")
	b.provider.register(fs)
	b.cache.register(fs)
	b.history.register(fs)
}

// request turns the flags into a validated pipeline request.
func (b *buildFlags) request(contextDir string) (pipeline.Request, error) {
	o := buildkit.Options{
		ContextDir: contextDir, Dockerfile: b.file, Target: b.target,
		Tags: b.tags, Push: b.push, NoCache: b.noCache, Progress: b.progress,
		Platforms: b.platforms, InsecureRegistries: b.provider.insecure,
		BuildArgs: map[string]string{}, Labels: map[string]string{},
	}
	for _, s := range b.buildArgs {
		k, v, err := buildkit.ParseKeyValue("--build-arg", s)
		if err != nil {
			return pipeline.Request{}, err
		}
		o.BuildArgs[k] = v
	}
	for _, s := range b.labels {
		k, v, err := buildkit.ParseKeyValue("--label", s)
		if err != nil {
			return pipeline.Request{}, err
		}
		o.Labels[k] = v
	}
	for _, s := range b.secrets {
		sec, err := buildkit.ParseSecret(s)
		if err != nil {
			return pipeline.Request{}, err
		}
		o.Secrets = append(o.Secrets, sec)
	}
	for _, s := range b.ssh {
		v, err := buildkit.ParseSSH(s)
		if err != nil {
			return pipeline.Request{}, err
		}
		o.SSH = append(o.SSH, v)
	}
	for _, s := range b.contexts {
		v, err := buildkit.ParseNamedContext(s)
		if err != nil {
			return pipeline.Request{}, err
		}
		o.NamedContexts = append(o.NamedContexts, v)
	}
	for _, s := range b.outputs {
		v, err := buildkit.ParseOutput(s)
		if err != nil {
			return pipeline.Request{}, err
		}
		o.Outputs = append(o.Outputs, v)
	}
	for _, s := range b.cacheFrom {
		v, err := buildkit.ParseCache("--cache-from", s)
		if err != nil {
			return pipeline.Request{}, err
		}
		o.CacheFrom = append(o.CacheFrom, v)
	}
	for _, s := range b.cacheTo {
		v, err := buildkit.ParseCache("--cache-to", s)
		if err != nil {
			return pipeline.Request{}, err
		}
		o.CacheTo = append(o.CacheTo, v)
	}
	req := pipeline.Request{Workspace: b.workspace, RunnerOverride: b.runnerType, Build: o}
	if req.Workspace == "" {
		req.Workspace = defaultWorkspace(contextDir)
	}
	if b.runnerType != "" {
		if _, err := sizingTable().Lookup(b.runnerType); err != nil {
			return req, fmt.Errorf("--runner-type: %w", err)
		}
	}
	if err := b.cache.apply(&req, b.provider.insecure); err != nil {
		return req, err
	}
	return req, req.Validate()
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
		return &UsageError{Msg: err.Error()}
	}
	specs := spec.Loader{Eval: spec.DefaultEvaluator(), Table: sizingTable()}
	if err := b.applyDirectives(ctx, specs, fs); err != nil {
		return err
	}
	if len(pos) == 0 && b.contextFromDirectives != "" {
		pos = []string{b.contextFromDirectives}
	}
	if len(pos) != 1 {
		return usageErr("build takes exactly one CONTEXT directory, got %d arguments", len(pos))
	}
	req, err := b.request(pos[0])
	if err != nil {
		return err
	}
	prov, err := b.provider.open()
	if err != nil {
		return err
	}
	rec, closeHistory, err := b.history.open(ctx)
	if err != nil {
		return err
	}
	defer closeHistory()
	cfg := pipeline.Config{Provider: prov, Logger: log, Specs: specs, Metrics: rec, History: rec}
	if b.history.natsURL != "" {
		pub := events.New(events.Options{URL: b.history.natsURL, Prefix: b.cache.eventsPrefix, Logger: log})
		defer pub.Close()
		cfg.Events = pub
	}
	p, err := pipeline.New(cfg)
	if err != nil {
		return err
	}
	req.Build.ProgressOut = stderr
	if b.progress == "quiet" || b.quiet {
		req.Build.ProgressOut = io.Discard
	}
	res, runErr := p.Run(ctx, req)
	if b.reportJSON != "" {
		if err := writeJSON(b.reportJSON, res); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if b.quiet {
		if runErr == nil {
			fmt.Fprintln(stdout, res.Digest)
		}
	} else {
		printReport(stdout, res)
	}
	return runErr
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
