package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/lian-build/action/internal/version"
)

// Main is the gateway process: flags, then Run until SIGINT/SIGTERM. Bad
// flags or configuration exit 2 with a plain message, before any log line.
func Main(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if slices.Contains(args, "--version") {
		fmt.Fprintln(stdout, version.String("lian-build gateway"))
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && args[0] == "check-config" {
		return checkConfig(ctx, args[1:], stdout, stderr)
	}
	cfg, err := ParseFlags(ctx, args, getenv)
	var help *HelpRequested
	switch {
	case errors.As(err, &help):
		fmt.Fprint(stdout, help.Usage)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := Run(ctx, cfg, log); err != nil {
		log.Error("gateway stopped", "err", err)
		return 1
	}
	return 0
}

// checkConfig is `gateway check-config FILE`: the file against the schema,
// every value against its flag and the validation the gateway's start runs;
// 0 when it is good, 2 with file:line:col or the setting at fault.
func checkConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: gateway check-config FILE")
		return 2
	}
	// Exactly what the gateway's start checks: the file against the
	// schema, every value against its flag, then Config.Validate.
	if _, err := ParseFlags(ctx, []string{"--config", args[0]}, func(string) string { return "" }); err != nil {
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return 0
}
