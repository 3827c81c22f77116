package remote

import (
	"fmt"
	"regexp"
	"strings"
)

// BuildkitVersion is the buildkitd a stock-image server installs; it is
// the version lian-build is built and tested against (tools/go.mod).
const BuildkitVersion = "v0.34.2"

// DefaultBuildkitURL is where a stock-image server downloads buildkitd
// from; {arch} is the Debian architecture (amd64, arm64).
const DefaultBuildkitURL = "https://github.com/moby/buildkit/releases/download/" + BuildkitVersion +
	"/buildkit-" + BuildkitVersion + ".linux-{arch}.tar.gz"

// RuncVersion is the runc a server downloads when runc is not taken from
// its distribution's packages (an air-gapped network: --hcloud-runc-url).
const RuncVersion = "v1.4.0"

// DefaultRuncURL is runc's static release binary; {arch} as for buildkitd.
const DefaultRuncURL = "https://github.com/opencontainers/runc/releases/download/" + RuncVersion + "/runc.{arch}"

// Software is what a stock-image server downloads at boot: buildkitd (nil:
// the image has it) and runc (nil: from the distribution's packages).
type Software struct {
	Buildkit, Runc *Download
}

// Download is a tarball a server fetches at boot, and the sha256 it must
// have: nothing downloaded is unpacked, let alone run, before it matches.
type Download struct {
	URL    string // {arch} replaced
	SHA256 string // 64 lower-case hex digits
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParsePins reads "arm64=HEX,amd64=HEX" (the sha256 of the tarball of each
// architecture).
func ParsePins(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		arch, sum, ok := strings.Cut(item, "=")
		if !ok || (arch != "amd64" && arch != "arm64") || !sha256RE.MatchString(sum) {
			return nil, fmt.Errorf("%q: want ARCH=SHA256 (ARCH amd64 or arm64, 64 lower-case hex digits)", item)
		}
		out[arch] = sum
	}
	return out, nil
}

// For is the download of buildkitd for an architecture from a URL
// template and its pins (nil when none is pinned: the server must have
// buildkitd already).
func For(urlTemplate string, pins map[string]string, arch string) *Download {
	return download(urlTemplate, DefaultBuildkitURL, pins, arch)
}

// RuncFor is the download of runc for an architecture (nil when none is
// pinned: runc comes from the distribution's packages).
func RuncFor(urlTemplate string, pins map[string]string, arch string) *Download {
	return download(urlTemplate, DefaultRuncURL, pins, arch)
}

func download(urlTemplate, def string, pins map[string]string, arch string) *Download {
	sum, ok := pins[arch]
	if !ok {
		return nil
	}
	if urlTemplate == "" {
		urlTemplate = def
	}
	return &Download{URL: strings.ReplaceAll(urlTemplate, "{arch}", arch), SHA256: sum}
}

// installLine is the user-data command that installs buildkitd: the pinned
// download verified before it is unpacked, or, without one, a check that
// the image (a runner image) has buildkitd, failing cloud-init loudly.
func installLine(dl *Download) string {
	if dl == nil {
		return `sh -c '[ -x /usr/local/bin/buildkitd ] || { echo "lian-build: this image has no buildkitd and no pinned download was given (--hcloud-buildkit-sha256, or boot from a runner image)" >&2; exit 1; }'`
	}
	return fmt.Sprintf(`sh -c 'set -e; curl -fsSL --proto =https,http -o /run/buildkit.tgz %q; echo "%s  /run/buildkit.tgz" | sha256sum -c -; tar -xzf /run/buildkit.tgz -C /usr/local; rm -f /run/buildkit.tgz'`, dl.URL, dl.SHA256)
}

// runcLine installs the pinned runc, verified before it is made
// executable; without one, runc is the package's (nothing to do here).
func runcLine(dl *Download) string {
	if dl == nil {
		return "true"
	}
	return fmt.Sprintf(`sh -c 'set -e; curl -fsSL --proto =https,http -o /run/runc %q; echo "%s  /run/runc" | sha256sum -c -; install -m 0755 /run/runc /usr/local/sbin/runc; rm -f /run/runc'`, dl.URL, dl.SHA256)
}
