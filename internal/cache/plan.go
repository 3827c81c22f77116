// Package cache turns who is building into the exact list of registry cache
// imports and exports (docs/architecture.md, "Cache namespace model"):
//
//	<registry>/ci/<workspace>:cache               canonical, written by CI only
//	<registry>/dev/<actor-id>-<workspace>:cache   per session actor
//
// The namespace rules are enforced here and nowhere else: CI never imports
// dev/*; a session never writes ci/*; ci_aux imports only ci/*.
package cache

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/lian-build/action/internal/buildkit"
)

// ActorKind is who builds.
type ActorKind string

const (
	ActorCI    ActorKind = "ci"
	ActorHuman ActorKind = "human"
	ActorAgent ActorKind = "agent"
	ActorCIAux ActorKind = "ci_aux"
)

// Actor is a kind and, for sessions, an id (a login, an agent name).
type Actor struct {
	Kind ActorKind `json:"kind"`
	ID   string    `json:"id,omitempty"`
}

func (a Actor) String() string {
	if a.ID == "" {
		return string(a.Kind)
	}
	return string(a.Kind) + ":" + a.ID
}

// Session reports whether the actor writes its own dev/ namespace.
func (a Actor) Session() bool { return a.Kind == ActorHuman || a.Kind == ActorAgent }

// ParseActor reads ci | ci_aux | human:ID | agent:ID.
func ParseActor(s string) (Actor, error) {
	kind, id, _ := strings.Cut(s, ":")
	a := Actor{Kind: ActorKind(kind), ID: id}
	return a, a.Validate()
}

// Validate checks the kind and the id against registry path rules.
func (a Actor) Validate() error {
	switch a.Kind {
	case ActorCI, ActorCIAux:
		if a.ID != "" {
			return fmt.Errorf("actor %q: %s takes no id", a, a.Kind)
		}
	case ActorHuman, ActorAgent:
		if a.ID == "" {
			return fmt.Errorf("actor %q: %s needs an id (%s:ID)", a, a.Kind, a.Kind)
		}
		if err := ValidName("actor id", a.ID); err != nil {
			return err
		}
	default:
		return fmt.Errorf("actor %q: kind must be ci, ci_aux, human:ID or agent:ID", a)
	}
	return nil
}

// Disposition is what a session does with the cache it writes.
type Disposition string

const (
	Export   Disposition = "export"   // write back on success
	Discard  Disposition = "discard"  // never write
	Rollback Disposition = "rollback" // write to a staging ref, promote on success
)

// Dispositions are the dispositions a session may choose.
var Dispositions = []string{string(Export), string(Discard), string(Rollback)}

// ParseDisposition reads export | discard | rollback ("" = export).
func ParseDisposition(s string) (Disposition, error) {
	if s == "" {
		return Export, nil
	}
	if slices.Contains(Dispositions, s) {
		return Disposition(s), nil
	}
	return "", fmt.Errorf("cache disposition %q: want %s", s, oneOf(Dispositions))
}

// oneOf lists choices as "a, b or c".
func oneOf(choices []string) string {
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

// Provider is a registry product; they differ in the cache manifests they accept.
type Provider string

const (
	Zot       Provider = "zot"
	Harbor    Provider = "harbor"
	GHCR      Provider = "ghcr"
	DockerHub Provider = "dockerhub"
	Generic   Provider = "generic"
)

// Providers are the registry products lian-build knows.
var Providers = []string{string(Zot), string(Harbor), string(GHCR), string(DockerHub), string(Generic)}

// ParseProvider reads a registry provider name ("" = generic).
func ParseProvider(s string) (Provider, error) {
	if s == "" {
		return Generic, nil
	}
	if slices.Contains(Providers, s) {
		return Provider(s), nil
	}
	return "", fmt.Errorf("registry provider %q: want %s", s, oneOf(Providers))
}

// exporterAttrs are the cache exporter options a provider needs.
func (p Provider) exporterAttrs() map[string]string {
	attrs := map[string]string{"mode": "max", "oci-mediatypes": "true", "image-manifest": "true", "compression": "zstd"}
	switch p {
	case DockerHub:
		// Docker Hub serves cache manifest lists; an image manifest is not needed.
		delete(attrs, "image-manifest")
		attrs["compression"] = "gzip"
	case Harbor:
		// Harbor refuses the cache's manifest list; gzip for older Harbor replication.
		attrs["compression"] = "gzip"
	}
	return attrs
}

// Input says who builds what, where.
type Input struct {
	Registry     string // HOST[:PORT][/PREFIX]
	Workspace    string
	Actor        Actor
	Disposition  Disposition
	Provider     Provider
	ExtraImports []string // lamina base layers etc.
	BuildID      string   // names the rollback staging ref
	IgnoreError  bool     // a failed cache export does not fail the build
	Insecure     bool     // plain-HTTP registry
}

// Plan is the cache list of one build.
type Plan struct {
	Imports []buildkit.CacheEntry `json:"imports"`
	Exports []buildkit.CacheEntry `json:"exports"`
	// Promote, for 'rollback, copies the staging ref to the session ref after success.
	Promote *Promotion `json:"promote,omitempty"`
}

// Promotion is a manifest copy within one repository.
type Promotion struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ImportRefs and ExportRefs list the refs, for reports and checks.
func (p Plan) ImportRefs() []string { return refs(p.Imports) }
func (p Plan) ExportRefs() []string { return refs(p.Exports) }

func refs(es []buildkit.CacheEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Attrs["ref"])
	}
	return out
}

var nameRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// ValidName checks a workspace or actor id: registry path component rules,
// no '/', no "..", no upper case.
func ValidName(what, s string) error {
	if rule := NameRule(s); rule != "" {
		return fmt.Errorf("%s %q: %s", what, s, rule)
	}
	return nil
}

// MaxName is the longest workspace or actor id.
const MaxName = 100

// NameRule is "" for a valid workspace or actor id, else the rule it breaks.
// It is the one rule for these names: the pipeline, the cache plan and the
// metrics history all use it.
func NameRule(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxName:
		return fmt.Sprintf("longer than %d characters (%d)", MaxName, len(s))
	case !nameRE.MatchString(s):
		return "use lower-case letters and digits separated by single '.', '_' or '-' (registry path rules)"
	}
	return ""
}

// SanitizeName turns any text (a directory, a repository, a login) into a
// valid name: lower case, other characters and runs of separators become a
// single '-', trimmed, at most MaxName characters; "" if nothing is left.
func SanitizeName(s string) string {
	var b strings.Builder
	sep := false
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if sep && b.Len() > 0 {
				b.WriteByte('-')
			}
			sep = false
			b.WriteRune(c)
			continue
		}
		sep = true
	}
	out := b.String()
	if len(out) > MaxName {
		out = strings.TrimRight(out[:MaxName], "-")
	}
	return out
}

var registryRE = regexp.MustCompile(`^[a-zA-Z0-9.-]+(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$`)

// ValidRegistry checks a cache registry HOST[:PORT][/PREFIX].
func ValidRegistry(r string) error {
	if !registryRE.MatchString(strings.TrimSuffix(r, "/")) {
		return fmt.Errorf("registry %q: want HOST[:PORT][/PREFIX] (lower-case path)", r)
	}
	return nil
}

// NewPlan computes the imports and exports of a build.
func NewPlan(in Input) (Plan, error) {
	if in.Registry == "" {
		return Plan{}, nil // no registry: no cache
	}
	in.Registry = strings.TrimSuffix(in.Registry, "/")
	if !registryRE.MatchString(in.Registry) {
		return Plan{}, fmt.Errorf("registry %q: want HOST[:PORT][/PREFIX]", in.Registry)
	}
	if err := ValidName("workspace", in.Workspace); err != nil {
		return Plan{}, err
	}
	if err := in.Actor.Validate(); err != nil {
		return Plan{}, err
	}
	if in.Disposition == "" {
		in.Disposition = Export
	}
	if in.Provider == "" {
		in.Provider = Generic
	}
	ci := fmt.Sprintf("%s/ci/%s:cache", in.Registry, in.Workspace)
	var p Plan
	imp := func(ref string) {
		attrs := map[string]string{"ref": ref}
		if in.Insecure {
			attrs["registry.insecure"] = "true"
		}
		p.Imports = append(p.Imports, buildkit.CacheEntry{Type: "registry", Attrs: attrs})
	}
	exp := func(ref string) {
		attrs := in.Provider.exporterAttrs()
		attrs["ref"] = ref
		if in.IgnoreError {
			attrs["ignore-error"] = "true"
		}
		if in.Insecure {
			attrs["registry.insecure"] = "true"
		}
		p.Exports = append(p.Exports, buildkit.CacheEntry{Type: "registry", Attrs: attrs})
	}
	switch in.Actor.Kind {
	case ActorCI:
		imp(ci)
		exp(ci)
	case ActorCIAux:
		imp(ci)
		exp(fmt.Sprintf("%s/ci/%s:aux", in.Registry, in.Workspace))
	case ActorHuman, ActorAgent:
		dev := fmt.Sprintf("%s/dev/%s-%s", in.Registry, in.Actor.ID, in.Workspace)
		imp(ci)
		imp(dev + ":cache")
		switch in.Disposition {
		case Export:
			exp(dev + ":cache")
		case Rollback:
			staging := fmt.Sprintf("%s:staging-%s", dev, stagingTag(in.BuildID))
			exp(staging)
			p.Promote = &Promotion{From: staging, To: dev + ":cache"}
		case Discard:
		default:
			return Plan{}, fmt.Errorf("cache disposition %q: want export, discard or rollback", in.Disposition)
		}
	}
	for _, ref := range in.ExtraImports {
		imp(ref)
	}
	if err := Check(in, p); err != nil {
		return Plan{}, err
	}
	return p, nil
}

func stagingTag(buildID string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(buildID) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return "build"
	}
	return b.String()
}

// ErrNamespace is a plan that breaks a namespace rule.
var ErrNamespace = errors.New("cache namespace rule")

// Check enforces the hard rules on a finished plan, whatever produced it:
// CI (and ci_aux) never import dev/*; sessions never write ci/*; a session
// only writes its own dev/<id>-<ws>.
func Check(in Input, p Plan) error {
	devPrefix := in.Registry + "/dev/"
	ciPrefix := in.Registry + "/ci/"
	for _, ref := range p.ImportRefs() {
		if !in.Actor.Session() && strings.HasPrefix(ref, devPrefix) {
			return fmt.Errorf("%w: actor %s may not import %s (CI never imports dev/*)", ErrNamespace, in.Actor, ref)
		}
		if in.Actor.Kind == ActorCIAux && !strings.HasPrefix(ref, ciPrefix) {
			return fmt.Errorf("%w: ci_aux imports only ci/*, not %s", ErrNamespace, ref)
		}
	}
	own := fmt.Sprintf("%sdev/%s-%s:", in.Registry+"/", in.Actor.ID, in.Workspace)
	for _, ref := range p.ExportRefs() {
		switch {
		case in.Actor.Session() && !strings.HasPrefix(ref, own):
			return fmt.Errorf("%w: session %s may write only %s*, not %s (a session never writes ci/*)", ErrNamespace, in.Actor, own, ref)
		case !in.Actor.Session() && !strings.HasPrefix(ref, ciPrefix+in.Workspace+":"):
			return fmt.Errorf("%w: actor %s may write only %s%s, not %s", ErrNamespace, in.Actor, ciPrefix, in.Workspace, ref)
		}
	}
	return nil
}

// Describe is a one-line summary for logs and reports.
func (p Plan) Describe() string {
	im, ex := p.ImportRefs(), p.ExportRefs()
	sort.Strings(im)
	return fmt.Sprintf("import %s; export %s", orNone(im), orNone(ex))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

// StateNamespaces are the runner-state namespaces of a build, by the same
// rules as the registry cache: the ones it may read, in order of
// preference, and the one it may write ("": none). CI reads and writes
// ci/<ws>; ci_aux reads ci/<ws> and writes nothing; a session reads its own
// dev/<id>-<ws>, else ci/<ws>, and writes its own unless it discards.
func StateNamespaces(a Actor, workspace string, d Disposition) (read []string, write string) {
	ci := "ci/" + workspace
	switch a.Kind {
	case ActorHuman, ActorAgent:
		dev := fmt.Sprintf("dev/%s-%s", a.ID, workspace)
		if d != Discard {
			write = dev
		}
		return []string{dev, ci}, write
	case ActorCIAux:
		return []string{ci}, ""
	default:
		return []string{ci}, ci
	}
}
