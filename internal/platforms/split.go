// Package platforms splits a build for several platforms into legs, one per
// architecture a provider runs natively, and merges the legs' images into
// one image index: the native multi-platform build.
package platforms

import (
	"fmt"
	"slices"
	"strings"
)

// Architectures are the machine architectures providers declare
// (compute.Features.Archs) and the platforms that run natively on each.
var Architectures = []struct {
	Arch      string // "arm", "x86"
	Platforms []string
}{
	{"arm", []string{"linux/arm64", "linux/arm64/v8"}},
	{"x86", []string{"linux/amd64", "linux/386"}},
}

// ArchOf is the architecture a platform runs natively on ("" for one no
// provider runs natively, e.g. linux/riscv64).
func ArchOf(platform string) string {
	for _, a := range Architectures {
		if slices.Contains(a.Platforms, platform) {
			return a.Arch
		}
	}
	return ""
}

// Leg is the part of a build one runner does: the platforms of one
// architecture (all of them, emulated, on a single-architecture provider).
type Leg struct {
	Arch      string   // the runner's architecture ("": the provider's only one)
	Platforms []string // in the order they were asked for
	Emulated  []string // platforms the runner builds through QEMU
}

// Name is the leg's short name: its first platform's architecture as
// BuildKit spells it (arm64, amd64), for workspaces and report rows.
func (l Leg) Name() string {
	p := strings.Split(l.Platforms[0], "/")
	if len(p) < 2 {
		return l.Platforms[0]
	}
	return p[1]
}

// Input is what Split decides from.
type Input struct {
	Platforms []string
	Provider  string
	// Native are the architectures the provider runs natively, its
	// default first (compute.Features.Archs).
	Native []string
	// Emulate lets a runner build the platforms its machine does not run
	// natively, through QEMU (--emulate-platforms).
	Emulate bool
}

// SplitError is a platform no runner of the provider builds natively,
// without --emulate-platforms.
type SplitError struct {
	Platform, Provider string
	Native             []string
}

func (e *SplitError) Error() string {
	return fmt.Sprintf("%s: the %s provider builds natively only for %s; --emulate-platforms builds it through QEMU on the runner (slower), or use a provider that has %s machines",
		e.Platform, e.Provider, strings.Join(nativePlatforms(e.Native), ", "), orUnknown(ArchOf(e.Platform)))
}

func orUnknown(arch string) string {
	if arch == "" {
		return "such"
	}
	return arch
}

func nativePlatforms(archs []string) []string {
	var out []string
	for _, a := range Architectures {
		if slices.Contains(archs, a.Arch) {
			out = append(out, a.Platforms[0])
		}
	}
	return out
}

// Split is the decision: one leg per native architecture the platforms
// need when the provider has machines of each; a single leg otherwise,
// with the platforms its machines do not run marked emulated (refused
// without Emulate). No platforms, or one, is one leg as before.
func Split(in Input) ([]Leg, error) {
	if len(in.Platforms) == 0 {
		return []Leg{{}}, nil
	}
	var legs []Leg
	var foreign []string
	for _, p := range in.Platforms {
		arch := ArchOf(p)
		if arch == "" || !slices.Contains(in.Native, arch) {
			foreign = append(foreign, p)
			continue
		}
		i := slices.IndexFunc(legs, func(l Leg) bool { return l.Arch == arch })
		if i < 0 {
			legs = append(legs, Leg{Arch: arch})
			i = len(legs) - 1
		}
		legs[i].Platforms = append(legs[i].Platforms, p)
	}
	if len(foreign) > 0 && !in.Emulate {
		return nil, &SplitError{Platform: foreign[0], Provider: in.Provider, Native: in.Native}
	}
	if len(foreign) > 0 {
		if len(legs) == 0 {
			legs = []Leg{{Arch: firstOr(in.Native)}}
		}
		legs[0].Platforms = append(legs[0].Platforms, foreign...)
		legs[0].Emulated = foreign
	}
	return legs, nil
}

func firstOr(archs []string) string {
	if len(archs) == 0 {
		return ""
	}
	return archs[0]
}
