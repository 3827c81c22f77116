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
)

// runSpec is `lian-build spec check [PATH]`: a directory or a .build-spec.ncl
// is checked as a build spec, any other file as BuildDirectives.
func runSpec(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return usageErr("usage: lian-build spec check [PATH]")
	}
	fs := newFlagSet("lian-build spec check", stderr)
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return flagErr(err)
	}
	path := "."
	if len(pos) > 1 {
		return usageErr("spec check takes one PATH")
	} else if len(pos) == 1 {
		path = pos[0]
	}
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

// runSizing is `lian-build sizing explain CONTEXT`.
func runSizing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "approve" || args[0] == "revoke") {
		return runApprove(ctx, args[0] == "approve", args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "explain" {
		return usageErr("usage: lian-build sizing explain [--runner-type T] [--workspace WS] CONTEXT | sizing approve|revoke WS")
	}
	fs := newFlagSet("lian-build sizing explain", stderr)
	override := fs.String("runner-type", "", "runner tier override")
	workspace := fs.String("workspace", "", "workspace (default: the context directory's name)")
	var hist frontdoor.Settings
	registerHistory(fs, &hist)
	registerSettings(fs, frontdoor.SettingsTable(), &hist, []string{"compute-provider", "platforms"})
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return flagErr(err)
	}
	if len(pos) != 1 {
		return usageErr("sizing explain takes one CONTEXT directory")
	}
	ws := *workspace
	if ws == "" {
		ws = defaultWorkspace(pos[0])
	}
	l := spec.Loader{Eval: spec.DefaultEvaluator(), Table: sizingTable()}
	s, err := l.Load(ctx, pos[0])
	if err != nil {
		return err
	}
	history, closeHistory, err := hist.OpenHistory(ctx)
	if err != nil {
		return err
	}
	defer closeHistory()
	d, err := sizing.Resolve(ctx, sizing.Input{
		Table: sizingTable(), Override: *override, Spec: s, Workspace: ws, History: history, ContextDir: pos[0],
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
