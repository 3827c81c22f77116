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
	"strings"

	"github.com/containerd/console"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/pipeline"
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
}

// register adds a flag for every setting of the table the CLI has, plus the
// CLI's own output flags.
func (b *buildFlags) register(fs *flag.FlagSet, table []frontdoor.Setting) {
	b.table = table
	registerSettings(fs, table, &b.s, nil)
	fs.StringVar(&b.reportJSON, "report-json", "", "write the build report as JSON to PATH")
	fs.BoolVar(&b.quiet, "q", false, "print only the image digest on success")
}

// settings completes the settings from the parsed flags, the environment and the directives.
func (b *buildFlags) settings(ctx context.Context, fs *flag.FlagSet, pos []string) (frontdoor.Settings, error) {
	s := b.s
	s.Given, s.Names = map[string]bool{}, cliNames(b.table)
	bySetting := map[string]string{}
	for _, st := range b.table {
		bySetting[st.Flag], bySetting[st.Short] = st.Name, st.Name
	}
	fs.Visit(func(f *flag.Flag) {
		if name, ok := bySetting[f.Name]; ok {
			s.Given[name] = true
		}
	})
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

// BuildUsage is `lian-build build -h` for a settings table.
func BuildUsage(table []frontdoor.Setting) string {
	fs := newFlagSet("lian-build build", io.Discard)
	var b buildFlags
	b.register(fs, table)
	return buildUsage(fs)
}

func buildUsage(fs *flag.FlagSet) string {
	var sb strings.Builder
	sb.WriteString("usage: lian-build build [flags] CONTEXT\n")
	fs.SetOutput(&sb)
	fs.PrintDefaults()
	return sb.String()
}

// Request is the pipeline request a `lian-build build` command line makes
// (for the front doors' parity test).
func Request(ctx context.Context, args []string) (pipeline.Request, error) {
	fs := newFlagSet("lian-build build", io.Discard)
	var b buildFlags
	b.register(fs, frontdoor.SettingsTable())
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return pipeline.Request{}, flagErr(err)
	}
	s, err := b.settings(ctx, fs, pos)
	if err != nil {
		return pipeline.Request{}, err
	}
	return s.Request()
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := newFlagSet("lian-build build", stderr)
	var b buildFlags
	b.register(fs, frontdoor.SettingsTable())
	fs.Usage = func() { fmt.Fprint(stderr, buildUsage(fs)) }
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
