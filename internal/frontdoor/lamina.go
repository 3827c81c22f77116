package frontdoor

import (
	"context"
	"fmt"
	"strings"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/pipeline"
)

// laminaPrefix names the named contexts of lamina layers: FROM lamina/rust.
const laminaPrefix = "lamina/"

// applyLamina adds each lamina layer the settings name as the named context
// lamina/NAME (REGISTRY/lamina/NAME:TAG, pinned by PinLamina when the build
// starts) and imports the layer's ci/ cache.
func (s Settings) applyLamina(req *pipeline.Request) error {
	if len(s.Lamina) == 0 {
		return nil
	}
	if s.Registry == "" {
		return &buildkit.InputError{Field: s.name("lamina"), Value: strings.Join(s.Lamina, ","), Msg: "needs the catalog's registry (--registry HOST[:PORT]/PREFIX)"}
	}
	reg := strings.TrimSuffix(s.Registry, "/")
	for _, l := range s.Lamina {
		name, tag, _ := strings.Cut(l, ":")
		if tag == "" {
			tag = "latest"
		}
		if err := cache.ValidName("lamina layer", name); err != nil || strings.ContainsAny(tag, "/@:") {
			return &buildkit.InputError{Field: s.name("lamina"), Value: l, Msg: "want NAME[:TAG]"}
		}
		req.Build.NamedContexts = append(req.Build.NamedContexts, buildkit.NamedContext{Name: laminaPrefix + name, DockerImage: reg + "/lamina/" + name + ":" + tag})
		req.Cache.ExtraImports = append(req.Cache.ExtraImports, fmt.Sprintf("%s/ci/lamina-%s:cache", reg, name))
	}
	return nil
}

// PinLamina pins the request's lamina layers to the digests their tags
// have now, so that the whole build uses one image of each.
func (s Settings) PinLamina(ctx context.Context, req *pipeline.Request) error {
	var reg *cache.Registry
	for i, nc := range req.Build.NamedContexts {
		if !strings.HasPrefix(nc.Name, laminaPrefix) || nc.DockerImage == "" || strings.Contains(nc.DockerImage, "@") {
			continue
		}
		if reg == nil {
			r, err := s.RegistryClient()
			if err != nil {
				return err
			}
			reg = &r
		}
		digest, _, err := reg.ImageLabels(ctx, nc.DockerImage)
		if err != nil {
			return fmt.Errorf("lamina layer %s: %w", strings.TrimPrefix(nc.Name, laminaPrefix), err)
		}
		if digest == "" {
			return &buildkit.InputError{Field: s.name("lamina"), Value: strings.TrimPrefix(nc.Name, laminaPrefix),
				Msg: nc.DockerImage + " does not exist: build the catalog first (lian-build catalog build)"}
		}
		req.Build.NamedContexts[i].DockerImage = nc.DockerImage + "@" + digest
	}
	return nil
}
