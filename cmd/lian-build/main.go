// Command lian-build builds container images on fresh, right-sized BuildKit
// runners. See `lian-build help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lian-build/action/internal/cli"
)

func main() {
	// SIGINT/SIGTERM cancel the build; the pipeline still destroys its runner.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
