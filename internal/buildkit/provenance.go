package buildkit

import (
	"regexp"
	"strconv"
	"strings"
)

// Provenance asks BuildKit for a SLSA provenance attestation (v1) of a
// pushed image, as buildx's --provenance does.
type Provenance struct {
	Mode      string // "min" or "max"; "" none
	BuilderID string // a URI naming the builder (lian-build, provider, tier)
	Source    string // the source repository (vcs:source)
	Revision  string // its commit (vcs:revision)
}

// ProvenanceAuto is ParseProvenance's answer to "" and "true": the mode the
// front door chooses (max for a public repository, min otherwise).
const ProvenanceAuto = "auto"

// ParseProvenance reads build-push-action's provenance input: false (none),
// true or "" (auto), mode=min, mode=max (also min, max), with builder-id=…
// accepted and left to lian-build.
func ParseProvenance(s string) (string, error) {
	if b, err := strconv.ParseBool(s); err == nil {
		if b {
			return ProvenanceAuto, nil
		}
		return "", nil
	}
	mode := ProvenanceAuto
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		switch {
		case f == "":
		case !ok && (k == "min" || k == "max"):
			mode = k
		case k == "mode" && (v == "min" || v == "max"):
			mode = v
		case k == "builder-id" || k == "version":
		default:
			return "", inputErr("provenance", s, "want false, true, mode=min or mode=max")
		}
	}
	return mode, nil
}

// attrs are the frontend options that ask for it.
func (p Provenance) attrs(attrs map[string]string) {
	if p.Mode == "" {
		return
	}
	v := "mode=" + p.Mode + ",version=v1"
	if p.BuilderID != "" {
		v += ",builder-id=" + strings.ReplaceAll(p.BuilderID, ",", "%2C")
	}
	attrs["attest:provenance"] = v
	if p.Source != "" {
		attrs["vcs:source"] = p.Source
	}
	if p.Revision != "" {
		attrs["vcs:revision"] = p.Revision
	}
}

// secretLooking are build-argument names and values that are credentials:
// mode=max provenance records build arguments in the attestation.
var (
	secretName  = regexp.MustCompile(`(?i)(secret|token|passw(or)?d|passwd|credential|api_?key|private_?key|access_?key|auth)`)
	secretValue = regexp.MustCompile(`^(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20}|sk-[A-Za-z0-9]{20,})$|-----BEGIN [A-Z ]*PRIVATE KEY-----`)
)

// checkProvenance refuses a build argument that looks like a secret, or is
// the value of one of the build's secrets, when mode=max would record it.
func (o Options) checkProvenance() error {
	if o.Provenance.Mode != "max" {
		return nil
	}
	secrets, err := o.secretValues()
	if err != nil {
		return err
	}
	for k, v := range o.BuildArgs {
		isSecret := secretName.MatchString(k) || secretValue.MatchString(v)
		for _, s := range secrets {
			isSecret = isSecret || (len(s) >= 4 && v == string(s))
		}
		if isSecret {
			return inputErr("build-args", k, "looks like a secret, and provenance mode=max records build arguments in the image's attestation: pass it as a secret (--secret, RUN --mount=type=secret), or set provenance to mode=min")
		}
	}
	return nil
}
