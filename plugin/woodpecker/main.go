// Command lian-build-plugin is the Woodpecker CI plugin (image lian-build-plugin).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lian-build/action/internal/woodpecker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := woodpecker.Main(ctx, os.Environ(), os.Stdout)
	stop()
	os.Exit(code)
}
