package buildkit

import (
	"regexp"
	"strconv"
	"strings"
)

// SBOM asks BuildKit for an SPDX SBOM attestation of the image, made by
// Generator: an image that speaks BuildKit's SBOM protocol, pinned by
// digest (lian-build's own is made offline by `lian-build sbom scanner`).
// The build arguments BUILDKIT_SBOM_SCAN_CONTEXT and
// BUILDKIT_SBOM_SCAN_STAGE add the context and named stages to the scan.
type SBOM struct {
	Generator string // REPOSITORY@sha256:…; "" none
}

var pinnedRE = regexp.MustCompile(`^[^@\s,]+@sha256:[0-9a-f]{64}$`)

// ParseSBOM reads build-push-action's sbom input — false or "" (none),
// true (the scanner setting's image), generator=IMAGE — with the scanner
// setting. The generator must be pinned by digest: a tag can be moved,
// and whatever it names runs inside the build with the image's files.
func ParseSBOM(s, scanner string) (SBOM, error) {
	gen := scanner
	if b, err := strconv.ParseBool(s); err == nil || s == "" {
		if !b {
			return SBOM{}, nil
		}
	} else {
		k, v, _ := strings.Cut(strings.TrimSpace(s), "=")
		if k != "generator" || v == "" {
			return SBOM{}, inputErr("sbom", s, "want false, true or generator=IMAGE@sha256:DIGEST")
		}
		gen = v
	}
	switch {
	case gen == "":
		return SBOM{}, inputErr("sbom-scanner", "", "an SBOM needs a scanner image: make one offline with `lian-build sbom scanner REPOSITORY` and pass the REPOSITORY@sha256:… it prints (docker/buildkit-syft-scanner is never pulled)")
	case !pinnedRE.MatchString(gen):
		field := "sbom-scanner"
		if gen != scanner {
			field = "sbom"
		}
		return SBOM{}, inputErr(field, gen, "pin the scanner image by digest (REPOSITORY@sha256:…): it runs inside the build")
	}
	return SBOM{Generator: gen}, nil
}

// attrs are the frontend options that ask for it.
func (s SBOM) attrs(attrs map[string]string) {
	if s.Generator != "" {
		attrs["attest:sbom"] = "generator=" + s.Generator
	}
}

// Attestation is what one platform image of a pushed index had attested,
// read back from the registry after the push.
type Attestation struct {
	Platform string `json:"platform"`
	// Digest is the attestation manifest's.
	Digest string `json:"digest"`
	// Predicates are the in-toto predicate types it holds.
	Predicates []string `json:"predicates"`
	// Packages is the number of packages the image's own SBOM lists (-1:
	// no SBOM); Scans counts its SBOMs, the context's and stages' included.
	Packages int `json:"sbom_packages"`
	Scans    int `json:"sbom_scans,omitempty"`
}
