package runnerhost

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/link"
)

// Main is the standalone fake: `fake-hcloud --listen 127.0.0.1:PORT`.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fake-hcloud", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8088", "address of the API (it answers under /v1)")
	token := fs.String("token", "fake-hcloud-token", "the API token clients must send")
	dir := fs.String("dir", filepath.Join(os.TempDir(), "fake-hcloud"), "state of the runner hosts")
	buildkitd := fs.String("buildkitd", "buildkitd", "buildkitd binary of the runner hosts")
	var ports []int
	fs.Func("registry-port", "a port of this machine's loopback (a registry) that every server reaches at 127.0.0.1:PORT, as a real server reaches a registry on its network (repeatable)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("%q: want a port", v)
		}
		ports = append(ports, n)
		return nil
	})
	var shaped *link.Preset
	fs.Func("link", "shape every server's link: lan, eu, transatlantic, or latency=RTT,bandwidth=NMbit (each server then answers on 127.77.x.y:22 through its own link)", func(v string) error {
		p, err := link.Parse(v)
		shaped = &p
		return err
	})
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
	var hosts fakehcloud.Hosts = &Hosts{Options: opts, Dir: filepath.Join(*dir, "hosts"), Forward: ports}
	if shaped != nil {
		hosts = &link.Hosts{Hosts: hosts, Preset: *shaped}
	}
	if err := fakehcloud.Serve(ctx, *listen, *token, hosts, stdout); err != nil {
		fmt.Fprintf(stderr, "fake-hcloud: %v\n", err)
		return 2
	}
	return 0
}
