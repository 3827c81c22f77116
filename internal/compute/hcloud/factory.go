// Package hcloud is the Hetzner Cloud compute provider: a server of the
// tier's type per lease, with its own SSH key, labelled as lian-build's,
// reached over SSH (internal/compute/sshx) and always deleted.
package hcloud

import (
	"errors"
	"fmt"
	"strings"
	"time"

	hc "github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/sizing"
)

// Option names (compute.Config.Options).
const (
	OptToken    = "hcloud-token"
	OptEndpoint = "hcloud-endpoint"
	OptLocation = "hcloud-location" // comma-separated, tried in order
	OptImage    = "hcloud-image"    // an image name, or label:KEY=VALUE for a snapshot
	OptArch     = "arch"            // arm (cax types) or x86 (cpx types): Config.Arch
	// OptVolumeSize is a state volume's size (e.g. 20GiB; at least 10 GB).
	OptVolumeSize = "state-volume-size"
	// OptBuildkitURL and OptBuildkitSHA256: where a stock-image server
	// downloads buildkitd ({arch}: amd64, arm64) and the sha256 each
	// architecture's tarball must have (ARCH=HEX,…).
	OptBuildkitURL    = "hcloud-buildkit-url"
	OptBuildkitSHA256 = "hcloud-buildkit-sha256"
	// OptRuncURL and OptRuncSHA256: the same for runc's binary; with a pin
	// a server installs nothing from apt (an air-gapped network).
	OptRuncURL    = "hcloud-runc-url"
	OptRuncSHA256 = "hcloud-runc-sha256"
)

// x86Types are the shared x86 server types of the same tiers, for linux/amd64.
var x86Types = map[string]string{"cax11": "cpx21", "cax21": "cpx31", "cax31": "cpx41", "cax41": "cpx51"}

// Settings are the provider's typed settings.
type Settings struct {
	Token     string
	Endpoint  string // "" is Hetzner's API
	Locations []string
	Image     string
	Arch      string
	// Socket is buildkitd's socket on the server.
	Socket string
	// Insecure are plain-HTTP registries the server's buildkitd may use.
	Insecure []string
	// PollEvery is the wait between action and readiness polls (at least
	// 1 s against the real API: 3,600 requests an hour per project).
	PollEvery time.Duration
	// DeleteRetries is how often a failed delete is tried again.
	DeleteRetries int
	// VolumeGB is a state volume's size (at least 10).
	VolumeGB int
	// BuildkitURL is the buildkitd tarball a stock-image server downloads
	// (default remote.DefaultBuildkitURL), BuildkitPins its sha256 by
	// architecture; without a pin for the server's architecture nothing is
	// downloaded and the image must have buildkitd (a runner image).
	BuildkitURL  string
	BuildkitPins map[string]string
	// RuncURL and RuncPins are runc's (default remote.DefaultRuncURL);
	// without a pin runc comes from the image's packages.
	RuncURL  string
	RuncPins map[string]string
}

type factory struct{}

func init() { compute.Register(factory{}) }

func (factory) Name() string        { return "hcloud" }
func (factory) Tiers() sizing.Table { return sizing.HCloud }
func (factory) Options() []string {
	return []string{OptToken, OptEndpoint, OptLocation, OptImage, OptBuildkitURL, OptBuildkitSHA256, OptRuncURL, OptRuncSHA256}
}

// Features: Volumes keep each namespace's state; arm (cax) and x86 (cpx)
// servers; a Stats reading is an SSH round trip.
func (factory) Features() compute.Features {
	return compute.Features{RemoteState: true, SampleEvery: time.Second, Archs: []string{"arm", "x86"}}
}

func (factory) Settings() []compute.Setting {
	return []compute.Setting{
		{Name: OptToken, Secret: true, Env: "HCLOUD_TOKEN", Help: "Hetzner Cloud API token for compute-provider hcloud (CLI: --hcloud-token-file or $HCLOUD_TOKEN)"},
		{Name: OptEndpoint, Env: "HCLOUD_ENDPOINT", Help: "Hetzner Cloud API URL (default Hetzner's)"},
		{Name: OptLocation, List: true, Default: "fsn1,nbg1,hel1", Help: "Hetzner locations, comma-separated, tried in order when one has no capacity"},
		{Name: OptBuildkitURL, Help: "the buildkitd tarball a stock-image server downloads at boot ({arch}: amd64, arm64; default BuildKit's release)"},
		{Name: OptBuildkitSHA256, Help: "sha256 of that tarball per architecture, amd64=HEX,arm64=HEX: verified before it is unpacked; without it a stock image downloads nothing (use a runner image)"},
		{Name: OptRuncURL, Help: "the runc binary a stock-image server downloads at boot ({arch}; default runc " + remote.RuncVersion + "'s release) instead of Debian's package"},
		{Name: OptRuncSHA256, Help: "sha256 of that binary per architecture, amd64=HEX,arm64=HEX: with it the server installs nothing from apt"},
		{Name: OptImage, Help: "server image: a name (cloud-init installs buildkitd) or label:KEY=VALUE for a snapshot (default: the newest runner image of this BuildKit, made by lian-build runners image --provider hcloud, else debian-12)"},
	}
}

func (f factory) New(cfg compute.Config) (compute.Provider, error) {
	s := Settings{Token: cfg.Options[OptToken], Endpoint: cfg.Options[OptEndpoint], Image: cfg.Options[OptImage], Arch: cfg.Arch, Insecure: cfg.Insecure}
	for _, l := range strings.Split(cfg.Options[OptLocation], ",") {
		if l = strings.TrimSpace(l); l != "" {
			s.Locations = append(s.Locations, l)
		}
	}
	if s.Token == "" {
		return nil, &compute.OptionError{Option: OptToken, Err: errors.New("a Hetzner Cloud API token is required (HCLOUD_TOKEN)")}
	}
	pins, err := remote.ParsePins(cfg.Options[OptBuildkitSHA256])
	if err != nil {
		return nil, &compute.OptionError{Option: OptBuildkitSHA256, Err: err}
	}
	s.BuildkitPins, s.BuildkitURL = pins, cfg.Options[OptBuildkitURL]
	if s.RuncPins, err = remote.ParsePins(cfg.Options[OptRuncSHA256]); err != nil {
		return nil, &compute.OptionError{Option: OptRuncSHA256, Err: err}
	}
	s.RuncURL = cfg.Options[OptRuncURL]
	for opt, u := range map[string]string{OptBuildkitURL: s.BuildkitURL, OptRuncURL: s.RuncURL} {
		if u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return nil, &compute.OptionError{Option: opt, Err: fmt.Errorf("%q: want an http(s) URL ({arch}: amd64 or arm64)", u)}
		}
	}
	if v := cfg.StateSize; v != "" {
		n, err := sizing.ParseSize(v)
		if err != nil {
			return nil, &compute.OptionError{Option: OptVolumeSize, Err: err}
		}
		s.VolumeGB = int((n + 1<<30 - 1) >> 30)
	}
	return New(s)
}

// Machines are the server types of the tiers on an architecture: cax (ARM,
// the default) or, for x86, cpx.
func (factory) Machines(arch string) (string, []compute.Machine) {
	if arch != "x86" {
		arch = "arm"
	}
	var out []compute.Machine
	for _, t := range sizing.HCloud {
		out = append(out, compute.Machine{Tier: t, Type: serverType(t.Name, arch)})
	}
	return arch, out
}

// serverType is the Hetzner server type of a tier on an architecture.
func serverType(tier, arch string) string {
	if arch == "x86" {
		return x86Types[tier]
	}
	return tier
}

// debianArch is the Debian name of a server type's architecture.
func debianArch(a hc.Architecture) string {
	if a == hc.ArchitectureARM {
		return "arm64"
	}
	return "amd64"
}

var (
	_ compute.StateAdmin     = (*Provider)(nil)
	_ compute.StatefulRunner = (*runner)(nil)
)
