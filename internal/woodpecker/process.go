package woodpecker

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/lian-build/action/internal/version"
)

const help = `lian-build-plugin — the Woodpecker CI plugin of lian-build.

Woodpecker runs it as a step image; settings arrive as PLUGIN_* variables
(lists comma-separated, maps as JSON), the commit and event as CI_*.

usage:
  lian-build-plugin             the build
  lian-build-plugin --help      this text
  lian-build-plugin --version   the lian-build and BuildKit versions
Exit codes: 0 success, 1 build failed, 2 bad settings, 3 out of memory on
every allowed tier, 4 time budget exceeded, 130 interrupted.
`

// Process is the plugin's process: arguments first (Woodpecker passes none),
// then the build, cancelled by SIGINT/SIGTERM (the runner is destroyed first).
func Process(args, environ []string, stdout io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "--help", "help":
			fmt.Fprint(stdout, help)
			return 0
		case "--version", "version":
			fmt.Fprintln(stdout, version.String("lian-build-plugin"))
			return 0
		}
		fmt.Fprintf(stdout, "lian-build-plugin: unexpected argument %q (settings come from PLUGIN_* variables)\n%s", args[0], help)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Main(ctx, environ, stdout)
}
