package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/containerd/console"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/launch"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/report"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// cliNames are what the CLI calls each setting in errors.
func cliNames(table []frontdoor.Setting) map[string]string {
	names := frontdoor.Names(table, frontdoor.Setting.CLIName)
	names["context"] = "build context"
	return names
}

type buildFlags struct {
	s          frontdoor.Settings
	table      []frontdoor.Setting
	reportJSON string
	quiet      bool
	log        *slog.Logger
}

// buildCommand is `lian-build build`: a flag for every setting of the
// table the CLI has, under its topic, plus the CLI's own output flags.
func buildCommand(table []frontdoor.Setting, log *slog.Logger) *cobra.Command {
	c, _ := newBuildCommand(table, log)
	return c
}

func newBuildCommand(table []frontdoor.Setting, log *slog.Logger) (*cobra.Command, *buildFlags) {
	b := &buildFlags{table: table, log: log}
	c := &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "build CONTEXT on a fresh, right-sized runner",
		Example: `  lian-build build -t registry.example/app:1 --push .
  lian-build build --platform linux/arm64 --output type=local,dest=out ./app
  lian-build build --provider hcloud --hcloud-token-file ~/.hcloud --registry registry.example/cache .`,
		Args:              args(0, 1, "one CONTEXT directory"),
		ValidArgsFunction: dirs,
		RunE:              b.run,
	}
	registerSettings(c, table, &b.s, nil)
	c.Flags().StringVar(&b.reportJSON, "report-json", "", "write the build report as JSON to PATH")
	c.Flags().BoolVarP(&b.quiet, "quiet", "q", false, "print only the image digest on success")
	return c, b
}

// settings completes the settings from the parsed flags, the environment and the directives.
func (b *buildFlags) settings(ctx context.Context, fs *pflag.FlagSet, pos []string) (frontdoor.Settings, error) {
	s := b.s
	s.Given, s.Names = given(fs, b.table), cliNames(b.table)
	s.RegistryPassword = os.Getenv("LIAN_REGISTRY_PASSWORD")
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

// BuildUsage is `lian-build build --help` for a settings table.
func BuildUsage(table []frontdoor.Setting) string {
	root := &cobra.Command{Use: "lian-build"}
	c := buildCommand(table, nil)
	root.AddCommand(c)
	c.InitDefaultHelpFlag()
	return usageText(c)
}

// Request is the pipeline request a `lian-build build` command line makes
// (for the front doors' parity test).
func Request(ctx context.Context, args []string) (pipeline.Request, error) {
	c, b := newBuildCommand(frontdoor.SettingsTable(), nil)
	if err := c.ParseFlags(args); err != nil {
		return pipeline.Request{}, &UsageError{Msg: err.Error(), Err: err}
	}
	s, err := b.settings(ctx, c.Flags(), c.Flags().Args())
	if err != nil {
		return pipeline.Request{}, err
	}
	return s.Request()
}

func (b *buildFlags) run(c *cobra.Command, pos []string) error {
	ctx, stdout, stderr := c.Context(), c.OutOrStdout(), c.ErrOrStderr()
	s, err := b.settings(ctx, c.Flags(), pos)
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
	res, runErr := launch.Build(ctx, s, req, launch.BuildOptions{Logger: b.log, Progress: progress})
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
		report.Write(stdout, res)
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
