package runnerhost

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

// Main is the standalone fake: `fake-hcloud --listen 127.0.0.1:PORT`.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fake-hcloud", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8088", "address of the API (it answers under /v1)")
	token := fs.String("token", "fake-hcloud-token", "the API token clients must send")
	dir := fs.String("dir", filepath.Join(os.TempDir(), "fake-hcloud"), "state of the runner hosts")
	buildkitd := fs.String("buildkitd", "buildkitd", "buildkitd binary of the runner hosts")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	opts := local.Options{Buildkitd: *buildkitd, StateDir: filepath.Join(*dir, "runners"), DaemonInCgroup: true}
	if _, err := local.New(opts); err != nil {
		fmt.Fprintf(stderr, "fake-hcloud: runner hosts: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := fakehcloud.Serve(ctx, *listen, *token, &Hosts{Options: opts, Dir: filepath.Join(*dir, "hosts")}, stdout); err != nil {
		fmt.Fprintf(stderr, "fake-hcloud: %v\n", err)
		return 2
	}
	return 0
}
