package runnerhost

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/link"
	"github.com/lian-build/action/internal/testenv/vmhost"
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
	kind := fs.String("runner-hosts", "netns", "what backs a server: netns (a network namespace with sshd and buildkitd on this kernel, fast) or vm (a qemu VM booting Debian's cloud kernel, the real cloud-init reading Hetzner's metadata service; servers then download buildkitd and runc from this process: pass the flags it prints)")
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var hosts fakehcloud.Hosts
	switch *kind {
	case "netns":
		opts := local.Options{Buildkitd: *buildkitd, StateDir: filepath.Join(*dir, "runners"), DaemonInCgroup: true}
		if _, err := local.New(opts); err != nil {
			fmt.Fprintf(stderr, "fake-hcloud: runner hosts: %v\n", err)
			return 1
		}
		hosts = &Hosts{Options: opts, Dir: filepath.Join(*dir, "hosts"), Forward: ports}
	case "vm":
		vms, closeVMs, err := vmHosts(ctx, *dir, *buildkitd, ports, stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "fake-hcloud: VM runner hosts: %v\n", err)
			return 1
		}
		defer closeVMs()
		hosts = vms
	default:
		fmt.Fprintf(stderr, "fake-hcloud: --runner-hosts %q: want netns or vm\n", *kind)
		return 2
	}
	if shaped != nil {
		hosts = &link.Hosts{Hosts: hosts, Preset: *shaped}
	}
	if err := fakehcloud.Serve(ctx, *listen, *token, hosts, stdout); err != nil {
		fmt.Fprintf(stderr, "fake-hcloud: %v\n", err)
		return 2
	}
	return 0
}

// vmHosts are VM runner hosts (the guest image built or taken from its
// cache) and the server of the downloads their user-data asks for; it
// prints the lian-build flags that point servers at those downloads.
func vmHosts(ctx context.Context, dir, buildkitd string, ports []int, stdout, stderr io.Writer) (*vmhost.Hosts, func(), error) {
	bk, err := exec.LookPath(buildkitd)
	if err != nil {
		return nil, nil, err
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, nil, err
	}
	img, err := vmhost.BuildImage(ctx, stderr)
	if err != nil {
		return nil, nil, err
	}
	ddir := filepath.Join(dir, "downloads")
	if err := os.MkdirAll(ddir, 0o755); err != nil {
		return nil, nil, err
	}
	dl, err := vmhost.ServeDownloads(ddir, bk, runc)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(stdout, "servers are VMs (%s); give lian-build: %s\n", vmhost.Accel(ctx, img), strings.Join(dl.Flags(), " "))
	h := &vmhost.Hosts{Image: img, Dir: filepath.Join(dir, "vms"), Forward: append(ports, dl.Port)}
	return h, func() {
		for _, id := range h.IDs() {
			_ = h.Stop(context.WithoutCancel(ctx), id)
		}
		dl.Close()
	}, nil
}
