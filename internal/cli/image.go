package cli

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"

	"github.com/moby/moby/client"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute/docker"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/frontdoor"
)

// runnersImage is `lian-build runners image --provider docker`: the docker
// provider's runner image, made from this machine's buildkitd, buildctl,
// runc and busybox and imported into the engine (no registry).
func runnersImage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lian-build runners image", stderr)
	s := frontdoor.Settings{Names: cliNames(frontdoor.SettingsTable())}
	registerSettings(fs, frontdoor.SettingsTable(), &s, []string{"compute-provider", "docker-host", "buildkitd"})
	tag := fs.String("tag", docker.LocalImage, "the image's name")
	if _, err := parseInterspersed(fs, args); err != nil {
		return flagErr(err)
	}
	if s.ComputeProvider != "docker" {
		return usageErr("runners image: only --provider docker has an image to make")
	}
	bk := s.Option("buildkitd")
	if bk == "" {
		bk = local.DefaultBuildkitd()
	}
	files := docker.ImageFiles{}
	for _, f := range []struct {
		dst  *string
		name string
	}{{&files.Buildkitd, bk}, {&files.Buildctl, filepath.Join(filepath.Dir(bk), "buildctl")}, {&files.Runc, "runc"}, {&files.Busybox, "busybox"}} {
		p, err := exec.LookPath(f.name)
		if err != nil {
			return fmt.Errorf("runners image: %s: %w (make tools; apt-get install runc busybox-static)", f.name, err)
		}
		*f.dst = p
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if h := s.Option("docker-host"); h != "" {
		opts = append(opts, client.WithHost(h))
	}
	c, err := client.New(opts...)
	if err != nil {
		return &buildkit.InputError{Field: "--docker-host", Value: s.Option("docker-host"), Msg: err.Error()}
	}
	defer c.Close()
	if err := docker.ImportImage(ctx, c, *tag, files); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %s into %s (buildkitd %s); use --docker-image %s\n", *tag, c.DaemonHost(), files.Buildkitd, *tag)
	return nil
}
