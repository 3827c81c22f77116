package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/spec"
	"github.com/spf13/cobra"
)

// specCommand is `lian-build spec check [PATH]`: a directory or a
// .build-spec.ncl is checked as a build spec, any other file as
// BuildDirectives.
func specCommand() *cobra.Command {
	c := &cobra.Command{Use: "spec", Short: "validate a .build-spec.ncl or a BuildDirectives file"}
	asGroup(c)
	c.AddCommand(&cobra.Command{Use: "check [PATH]", Short: "check a build spec (a directory or .build-spec.ncl) or a BuildDirectives file",
		Args: args(0, 1, "one PATH"), RunE: func(c *cobra.Command, pos []string) error {
			path := "."
			if len(pos) == 1 {
				path = pos[0]
			}
			return specCheck(c.Context(), path, c.OutOrStdout())
		}})
	return c
}

func specCheck(ctx context.Context, path string, stdout io.Writer) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, spec.SpecFile)
	}
	l := spec.Loader{Eval: spec.DefaultEvaluator(), Table: sizingTable()}
	if strings.HasSuffix(filepath.Base(path), spec.SpecFile) {
		s, err := l.Check(ctx, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ok: %s is a valid build spec (%s)\n", path, l.Eval.Name())
		return printJSON(stdout, specJSON(s))
	}
	d, err := l.LoadDirectives(ctx, path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ok: %s is valid BuildDirectives (%s)\n", path, l.Eval.Name())
	return printJSON(stdout, d)
}

func specJSON(s *sizing.Spec) map[string]any {
	m := map[string]any{}
	if s.RunnerType != "" {
		m["runner_type"] = s.RunnerType
	}
	if s.CPU > 0 {
		m["cpu"] = s.CPU
	}
	if s.MemoryGB > 0 {
		m["memory_gb"] = s.MemoryGB
	}
	if s.TimeBudget > 0 {
		m["time_budget_min"] = s.TimeBudget.Minutes()
	}
	if s.Language != "" {
		m["language"] = s.Language
	}
	return m
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// sizingCommand is `lian-build sizing explain|approve|revoke`.
func sizingCommand() *cobra.Command {
	c := &cobra.Command{Use: "sizing", Short: "which tier a build gets and why; let a workspace's P95 history decide it"}
	asGroup(c)
	var o explainOptions
	hist := newSettings()
	explain := &cobra.Command{Use: "explain [flags] CONTEXT", Short: "which sizing rule decides the tier, and why",
		Args: args(1, 1, "one CONTEXT directory"), ValidArgsFunction: dirs,
		RunE: func(c *cobra.Command, pos []string) error {
			return sizingExplain(c.Context(), pos[0], o, *hist, c.OutOrStdout())
		}}
	explain.Flags().StringVar(&o.override, "runner-type", "", "runner tier override")
	explain.Flags().StringVar(&o.workspace, "workspace", "", "workspace (default: the context directory's name)")
	registerHistory(explain, hist)
	registerSettings(explain, frontdoor.SettingsTable(), hist, []string{"compute-provider", "platforms"})
	c.AddCommand(explain, approveCommand(true), approveCommand(false))
	return c
}

// explainOptions are sizing explain's own flags.
type explainOptions struct{ override, workspace string }

func sizingExplain(ctx context.Context, dir string, o explainOptions, hist frontdoor.Settings, stdout io.Writer) error {
	ws := o.workspace
	if ws == "" {
		ws = defaultWorkspace(dir)
	}
	l := spec.Loader{Eval: spec.DefaultEvaluator(), Table: sizingTable()}
	s, err := l.Load(ctx, dir)
	if err != nil {
		return err
	}
	history, closeHistory, err := hist.OpenHistory(ctx)
	if err != nil {
		return err
	}
	defer closeHistory()
	d, err := sizing.Resolve(ctx, sizing.Input{
		Table: sizingTable(), Override: o.override, Spec: s, Workspace: ws, History: history, ContextDir: dir,
	})
	if err != nil {
		return err
	}
	row := func(k, v string) { fmt.Fprintf(stdout, "%-11s %s\n", k, v) }
	row("tier", fmt.Sprintf("%s (%d CPU / %d GB)", d.Tier.Name, d.Tier.CPU, d.Tier.MemoryGB))
	row("source", string(d.Source))
	row("reason", d.Reason)
	row("language", d.Language)
	row("budget", d.Budget.String())
	if d.Suggestion != "" {
		row("suggestion", d.Suggestion)
	}
	return explainMachines(stdout, hist, d.Tier.Name)
}

// explainMachines prints the provider's architecture and what each tier runs
// on, marking the build's tier.
func explainMachines(w io.Writer, s frontdoor.Settings, tier string) error {
	arch, machines, err := s.Machines()
	if err != nil || machines == nil {
		return err
	}
	provider := s.ProviderName()
	platform := map[string]string{"arm": "linux/arm64", "x86": "linux/amd64"}[arch]
	fmt.Fprintf(w, "%-11s %s, %s (%s)\n", "machines", provider, arch, platform)
	for _, m := range machines {
		mark := ""
		if m.Tier.Name == tier {
			mark = "  ← this build"
		}
		fmt.Fprintf(w, "  %-9s %2d CPU / %2d GB  %s%s\n", m.Tier.Name, m.Tier.CPU, m.Tier.MemoryGB, m.Type, mark)
	}
	return nil
}
