package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Run is the process: signals become a cancelled context, and the exit code
// is returned for os.Exit.
//
// SIGINT and SIGTERM cancel the build; the pipeline still destroys its runner.
// SIGPIPE (stdout closed, as in `lian-build build … | head -c 100`) does the
// same instead of killing the process with its runner left behind. A second
// SIGINT or SIGTERM exits at once with 130.
func Run(args []string) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	go func() {
		interrupts := 0
		for sig := range sigs {
			// Every write to the closed pipe raises SIGPIPE again: it never forces.
			if sig != syscall.SIGPIPE {
				interrupts++
			}
			if interrupts > 1 {
				fmt.Fprintf(os.Stderr, "lian-build: %v again: exiting now\n", sig)
				os.Exit(ExitCanceled)
			}
			cancel(fmt.Errorf("%v", sig))
		}
	}()
	return Main(ctx, args, os.Stdout, os.Stderr)
}
