// Package version says which lian-build and which BuildKit a binary is.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

const buildkitModule = "github.com/moby/buildkit"

// String is the version line of a binary: the module version (or the VCS
// revision of a source build), the BuildKit client it links, and Go.
func String(binary string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Sprintf("%s (no build information) %s", binary, runtime.Version())
	}
	return fmt.Sprintf("%s %s, BuildKit %s, %s", binary, moduleVersion(bi), dep(bi, buildkitModule), bi.GoVersion)
}

func moduleVersion(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && (v == "" || v == "(devel)") {
		return fmt.Sprintf("(devel, commit %s%s)", rev, modified)
	}
	if v == "" {
		return "(devel)"
	}
	return v
}

func dep(bi *debug.BuildInfo, path string) string {
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "(not linked)"
}

// Short is the module version, or the commit of a source build
// ("devel-0123456789ab"; "devel" without one): for URIs.
func Short() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}
