package action

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/version"
	"github.com/sethvargo/go-githubactions"
)

// Main runs the action, or its post step when invoked as lian-build-action-post
// (action.yml's post-entrypoint) or with the argument "post"; it returns the
// process exit code.
func Main(ctx context.Context, a *githubactions.Action, out io.Writer, argv0 string, args []string) int {
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if filepath.Base(argv0) == "lian-build-action-post" || (len(args) > 0 && args[0] == "post") {
		return post(ctx, a)
	}
	if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
		fmt.Fprint(out, help)
		return 0
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(out, version.String("lian-build-action"))
		return 0
	}
	maskSecrets(a, frontdoor.SettingsTable()) // before anything else is printed
	if err := run(ctx, a, out, log); err != nil {
		a.Errorf("lian-build: %v", err)
		return frontdoor.ExitCode(err)
	}
	return 0
}

const help = `lian-build-action — the GitHub Action entrypoint of lian-build.

Run by GitHub as a container action: inputs arrive as INPUT_* variables,
outputs go to $GITHUB_OUTPUT, the report to $GITHUB_STEP_SUMMARY.

usage:
  lian-build-action            the build
  lian-build-action post       removes this job's runners if the build step died
  lian-build-action --version  the lian-build and BuildKit versions
`
