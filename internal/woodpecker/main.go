package woodpecker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/lian-build/action/internal/frontdoor"
)

// Main runs the plugin with the process environment and returns the exit code.
func Main(ctx context.Context, environ []string, out io.Writer) int {
	env := Env{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(ctx, env, out, log); err != nil {
		fmt.Fprintf(out, "lian-build: %v\n", err)
		var se *SettingError
		if errors.As(err, &se) {
			return frontdoor.ExitUsage
		}
		return frontdoor.ExitCode(err)
	}
	return 0
}
