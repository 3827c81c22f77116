package docker

import (
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
)

// Option names (compute.Config.Options).
const (
	OptHost       = "docker-host"
	OptImage      = "docker-image"
	OptNetwork    = "docker-network"
	OptTierMemory = "local-tier-memory" // the local provider's: memory per tier
)

type factory struct{}

func init() { compute.Register(factory{}) }

func (factory) Name() string        { return "docker" }
func (factory) Tiers() sizing.Table { return sizing.HCloud }
func (factory) Options() []string   { return []string{OptHost, OptImage, OptNetwork, OptTierMemory} }

// Features: a Stats reading is an exec in the container.
func (factory) Features() compute.Features {
	return compute.Features{SampleEvery: time.Second, Archs: []string{compute.HostArch()}}
}

func (factory) Settings() []compute.Setting {
	return []compute.Setting{
		{Name: OptHost, Help: "compute-provider docker: the Docker Engine API (default $DOCKER_HOST, else the local socket)"},
		{Name: OptImage, Default: DefaultImage, Help: "compute-provider docker: the BuildKit image (make buildkit-image makes " + LocalImage + " here)"},
		{Name: OptNetwork, Help: "compute-provider docker: the runners' network (default the engine's)"},
	}
}

// CheckOptions checks the tier memory, contacting no engine.
func (f factory) CheckOptions(cfg compute.Config) error {
	_, err := compute.TierMemory(cfg, OptTierMemory, f.Tiers())
	return err
}

func (f factory) New(cfg compute.Config) (compute.Provider, error) {
	s := Settings{Host: cfg.Options[OptHost], Image: cfg.Options[OptImage], Network: cfg.Options[OptNetwork], Insecure: cfg.Insecure}
	var err error
	if s.TierMemory, err = compute.TierMemory(cfg, OptTierMemory, f.Tiers()); err != nil {
		return nil, err
	}
	return New(s)
}
