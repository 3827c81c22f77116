package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/lamina"
)

// runCatalog is `lian-build catalog check|build`.
func runCatalog(ctx context.Context, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	if len(args) > 0 && (args[0] == "build" || args[0] == "test") {
		return runCatalogBuild(ctx, args[0] == "test", args[1:], stdout, stderr, log)
	}
	if len(args) == 0 || args[0] != "check" {
		return usageErr("usage: lian-build catalog check [DIR] [--check-dag] | catalog build [DIR] [LAYER…] | catalog test [DIR] --layer NAME  (--registry HOST/PREFIX)")
	}
	fs := newFlagSet("lian-build catalog check", stderr)
	dag := fs.Bool("check-dag", false, "also check the DAG: every base resolves, no cycle, no duplicate name; list the unused layers")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return flagErr(err)
	}
	dir := "."
	switch len(pos) {
	case 0:
	case 1:
		dir = pos[0]
	default:
		return usageErr("catalog check takes one DIR")
	}
	c, err := loadCatalog(ctx, dir, stderr)
	if err != nil {
		return err
	}
	if !*dag {
		fmt.Fprintf(stdout, "%s: %d layers, every %s valid\n", dir, len(c.Layers), lamina.WorkflowFile)
		return nil
	}
	if err := c.Check(); err != nil {
		return err
	}
	var levels []string
	for _, names := range c.LevelNames() {
		levels = append(levels, strings.Join(names, ", "))
	}
	fmt.Fprintf(stdout, "%s: %d layers, a DAG\n  build order: %s\n  unused (no layer builds on them): %s\n",
		dir, len(c.Layers), strings.Join(levels, " → "), strings.Join(c.Unused(), ", "))
	return nil
}

// catalogSettings are the flags of `catalog build`, beside the provider's.
var catalogSettings = []string{"registry", "registry-provider", "registry-username", "registry-password-file", "nats-url", "events-prefix", "metrics-dir", "progress", "state-store"}

// runCatalogBuild is `lian-build catalog build [DIR] [LAYER…]`, and with
// test `lian-build catalog test [DIR] --layer NAME`: the layer and its
// bases built and verified, nothing promoted.
func runCatalogBuild(ctx context.Context, test bool, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := newFlagSet("lian-build catalog build", stderr)
	var only []string
	if test {
		fs.Func("layer", "the layer to test (with its bases; repeatable)", func(v string) error { only = append(only, v); return nil })
	}
	s := frontdoor.Settings{Names: cliNames(frontdoor.SettingsTable())}
	registerProvider(fs, &s)
	registerSettings(fs, frontdoor.SettingsTable(), &s, catalogSettings)
	parallel := fs.Int("parallel", 2, "layers of one level built at once")
	mode := fs.String("mode", "", "where the layers build: local (buildkitd here) or docker-local (a BuildKit container per layer: --provider docker)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if err := applyMode(&s, *mode); err != nil {
		return err
	}
	dir := "."
	if len(pos) > 0 {
		dir, pos = pos[0], pos[1:]
	}
	if test {
		if len(only) == 0 || len(pos) > 0 {
			return usageErr("usage: lian-build catalog test [DIR] --layer NAME")
		}
		pos = only
	}
	c, err := loadCatalog(ctx, dir, stderr)
	if err != nil {
		return err
	}
	if err := c.Check(); err != nil {
		return err
	}
	rt, err := s.Open(ctx, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	reg, err := s.RegistryClient()
	if err != nil {
		return err
	}
	b := lamina.Builder{Pipeline: rt.Pipeline, Base: s, Parallel: *parallel, Registry: reg, Events: rt.Events, Test: test}
	if s.Progress != "quiet" {
		b.Progress = stderr
	}
	results, err := b.Build(ctx, c, pos)
	fmt.Fprintln(stdout)
	if werr := lamina.WriteSummary(stdout, results); werr != nil {
		return errors.Join(err, werr)
	}
	// In a GitHub Actions step, the job summary gets the Markdown table.
	if path := os.Getenv("GITHUB_STEP_SUMMARY"); path != "" {
		if serr := appendFile(path, "### lian-build catalog\n\n"+lamina.Markdown(results)+"\n"); serr != nil {
			return errors.Join(err, fmt.Errorf("GITHUB_STEP_SUMMARY: %w", serr))
		}
	}
	return err
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// modes are catalog's --mode values and the provider each names.
var modes = map[string]string{"local": "local", "docker-local": "docker"}

// applyMode sets the provider --mode names; a --provider that says
// otherwise is a usage error.
func applyMode(s *frontdoor.Settings, mode string) error {
	if mode == "" {
		return nil
	}
	prov, ok := modes[mode]
	if !ok {
		return usageErr("--mode %q: want local or docker-local", mode)
	}
	if s.ComputeProvider != "" && s.ComputeProvider != "local" && s.ComputeProvider != prov {
		return usageErr("--mode %s builds on the %s provider, not --provider %s", mode, prov, s.ComputeProvider)
	}
	s.ComputeProvider = prov
	return nil
}

// loadCatalog loads a catalog and says what it skipped; a directory that
// cannot be read is bad input.
func loadCatalog(ctx context.Context, dir string, stderr io.Writer) (*lamina.Catalog, error) {
	c, err := lamina.Load(ctx, dir)
	var de *lamina.DirError
	if errors.As(err, &de) {
		return nil, &UsageError{Msg: err.Error(), Err: err}
	}
	if c != nil {
		for _, s := range c.Skipped {
			fmt.Fprintf(stderr, "catalog %s: skipped %s\n", dir, s)
		}
	}
	return c, err
}
