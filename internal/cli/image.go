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
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/docker"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/frontdoor"
)

// runnersImageCommand is `lian-build runners image --provider P`: the
// docker provider's runner image, made from this machine's buildkitd,
// buildctl, runc and busybox and imported into the engine (no registry);
// for a provider that makes its own (compute.ImageMaker: hcloud's
// snapshot, Proxmox's runner template), what its machines then boot.
func runnersImageCommand() *cobra.Command {
	s := newSettings()
	var tag string
	c := &cobra.Command{Use: "image", Short: "make a provider's runner image: docker (from this machine's BuildKit), hcloud (a snapshot), proxmox (a template)", Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if s.ComputeProvider != "docker" {
				return providerImage(c.Context(), *s, c.OutOrStdout(), c.ErrOrStderr())
			}
			return runnersImage(c.Context(), *s, tag, c.OutOrStdout())
		}}
	registerSettings(c, frontdoor.SettingsTable(), s, append([]string{"compute-provider", "docker-host", "buildkitd"}, frontdoor.ProviderSettings()...))
	c.Flags().StringVar(&tag, "tag", docker.LocalImage, "the docker provider's image name")
	return c
}

// providerImage has the provider make its runner image.
func providerImage(ctx context.Context, s frontdoor.Settings, stdout, stderr io.Writer) error {
	prov, err := s.OpenProvider()
	if err != nil {
		return err
	}
	m, ok := prov.(compute.ImageMaker)
	if !ok {
		return usageErr("runners image: the %s provider has no runner image to make (docker, hcloud and proxmox do)", prov.Name())
	}
	fmt.Fprintf(stderr, "making the %s runner image (a machine boots, installs BuildKit, and is snapshotted or made a template)…\n", prov.Name())
	img, err := m.MakeImage(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "runner image %s: %s (labels %v); machines boot the newest one by default\n", img.ID, img.Description, img.Labels)
	return nil
}

func runnersImage(ctx context.Context, s frontdoor.Settings, tag string, stdout io.Writer) error {
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
