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
	"github.com/lian-build/action/internal/launch"
	"github.com/spf13/cobra"
)

// catalogCommand is `lian-build catalog check|build|test`.
func catalogCommand(log *slog.Logger) *cobra.Command {
	c := &cobra.Command{Use: "catalog", Short: "a lamina catalog: check it, build and promote its layers, test one"}
	asGroup(c)
	var dag bool
	check := &cobra.Command{Use: "check [DIR]", Short: "check a catalog's workflow.ncl files (--check-dag: bases, cycles, names)",
		Args: args(0, 1, "one DIR"), ValidArgsFunction: dirs,
		RunE: func(c *cobra.Command, pos []string) error {
			dir := "."
			if len(pos) == 1 {
				dir = pos[0]
			}
			return catalogCheck(c.Context(), dir, dag, c.OutOrStdout(), c.ErrOrStderr())
		}}
	check.Flags().BoolVar(&dag, "check-dag", false, "also check the DAG: every base resolves, no cycle, no duplicate name; list the unused layers")
	c.AddCommand(check, catalogBuildCommand(false, log), catalogBuildCommand(true, log))
	return c
}

func catalogCheck(ctx context.Context, dir string, dag bool, stdout, stderr io.Writer) error {
	c, err := loadCatalog(ctx, dir, stderr)
	if err != nil {
		return err
	}
	if !dag {
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

// catalogBuildCommand is `lian-build catalog build [DIR] [LAYER…]`, and
// with test `lian-build catalog test [DIR] --layer NAME`: the layer and
// its bases built and verified, nothing promoted.
func catalogBuildCommand(test bool, log *slog.Logger) *cobra.Command {
	s := newSettings()
	o := catalogOptions{test: test}
	c := &cobra.Command{Use: "build [DIR] [LAYER...]", Short: "build, verify and promote a catalog's layers (--registry HOST/PREFIX)",
		ValidArgsFunction: dirs,
		RunE: func(c *cobra.Command, pos []string) error {
			return catalogBuild(c.Context(), *s, o, pos, c.OutOrStdout(), c.ErrOrStderr(), log)
		}}
	if test {
		c.Use, c.Short, c.Args = "test [DIR] --layer NAME", "build and verify a layer and its bases, promote nothing", args(0, 1, "one DIR")
		c.Flags().StringArrayVar(&o.only, "layer", nil, "the layer to test (with its bases; repeatable)")
	}
	registerProvider(c, s)
	registerSettings(c, frontdoor.SettingsTable(), s, catalogSettings)
	c.Flags().IntVar(&o.parallel, "parallel", 2, "layers of one level built at once")
	c.Flags().StringVar(&o.mode, "mode", "", "where the layers build: local (buildkitd here) or docker-local (a BuildKit container per layer: --provider docker)")
	return c
}

// catalogOptions are catalog build's and test's own flags.
type catalogOptions struct {
	test     bool
	only     []string
	parallel int
	mode     string
}

// catalogSettings are the flags of `catalog build`, beside the provider's.
var catalogSettings = []string{"registry", "registry-provider", "registry-username", "registry-password-file", "nats-url", "events-prefix", "metrics-dir", "progress", "state-store"}

func catalogBuild(ctx context.Context, s frontdoor.Settings, o catalogOptions, pos []string, stdout, stderr io.Writer, log *slog.Logger) error {
	if err := applyMode(&s, o.mode); err != nil {
		return err
	}
	dir := "."
	if len(pos) > 0 {
		dir, pos = pos[0], pos[1:]
	}
	if o.test {
		if len(o.only) == 0 {
			return usageErr("usage: lian-build catalog test [DIR] --layer NAME")
		}
		pos = o.only
	}
	c, err := loadCatalog(ctx, dir, stderr)
	if err != nil {
		return err
	}
	if err := c.Check(); err != nil {
		return err
	}
	rt, err := launch.Open(ctx, s, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	reg, err := s.RegistryClient()
	if err != nil {
		return err
	}
	b := lamina.Builder{Pipeline: rt.Pipeline, Base: s, Parallel: o.parallel, Registry: reg, Events: rt.Events, Test: o.test}
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
