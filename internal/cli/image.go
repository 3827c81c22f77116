package cli

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute/docker"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/frontdoor"
)

// runnersImageCommand is `lian-build runners image --provider docker`: the
// docker provider's runner image, made from this machine's buildkitd,
// buildctl, runc and busybox and imported into the engine (no registry).
func runnersImageCommand() *cobra.Command {
	s := newSettings()
	var tag string
	c := &cobra.Command{Use: "image", Short: "make the docker provider's runner image from this machine's BuildKit", Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runnersImage(c.Context(), *s, tag, c.OutOrStdout()) }}
	registerSettings(c, frontdoor.SettingsTable(), s, []string{"compute-provider", "docker-host", "buildkitd"})
	c.Flags().StringVar(&tag, "tag", docker.LocalImage, "the image's name")
	return c
}

func runnersImage(ctx context.Context, s frontdoor.Settings, tag string, stdout io.Writer) error {
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
	if err := docker.ImportImage(ctx, c, tag, files); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %s into %s (buildkitd %s); use --docker-image %s\n", tag, c.DaemonHost(), files.Buildkitd, tag)
	return nil
}
