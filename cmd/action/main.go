// Command lian-build-action is the entrypoint of `uses: lian-build/action@v1`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lian-build/action/internal/action"
	"github.com/sethvargo/go-githubactions"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := action.Main(ctx, githubactions.New(), os.Stdout, os.Args[0], os.Args[1:])
	stop()
	os.Exit(code)
}
