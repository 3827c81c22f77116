package cache

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/buildkit"
)

func TestPlan(t *testing.T) {
	const reg = "registry.example.com:5000/team"
	tests := []struct {
		name     string
		in       Input
		imports  []string
		exports  []string
		promote  *Promotion
		provider Provider
	}{
		{"ci", Input{Actor: Actor{Kind: ActorCI}},
			[]string{reg + "/ci/app:cache"}, []string{reg + "/ci/app:cache"}, nil, Generic},
		{"ci_aux", Input{Actor: Actor{Kind: ActorCIAux}},
			[]string{reg + "/ci/app:cache"}, []string{reg + "/ci/app:aux"}, nil, Generic},
		{"human export", Input{Actor: Actor{Kind: ActorHuman, ID: "jpl"}, Disposition: Export},
			[]string{reg + "/ci/app:cache", reg + "/dev/jpl-app:cache"}, []string{reg + "/dev/jpl-app:cache"}, nil, Generic},
		{"agent discard", Input{Actor: Actor{Kind: ActorAgent, ID: "bot-7"}, Disposition: Discard},
			[]string{reg + "/ci/app:cache", reg + "/dev/bot-7-app:cache"}, nil, nil, Generic},
		{"human rollback", Input{Actor: Actor{Kind: ActorHuman, ID: "jpl"}, Disposition: Rollback, BuildID: "b12ab"},
			[]string{reg + "/ci/app:cache", reg + "/dev/jpl-app:cache"}, []string{reg + "/dev/jpl-app:staging-b12ab"},
			&Promotion{From: reg + "/dev/jpl-app:staging-b12ab", To: reg + "/dev/jpl-app:cache"}, Generic},
		{"lamina base layers", Input{Actor: Actor{Kind: ActorCI}, ExtraImports: []string{reg + "/lamina/rust-deps:abc"}},
			[]string{reg + "/ci/app:cache", reg + "/lamina/rust-deps:abc"}, []string{reg + "/ci/app:cache"}, nil, Generic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Registry, tt.in.Workspace = reg, "app"
			p, err := NewPlan(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.ImportRefs(), tt.imports) || !reflect.DeepEqual(p.ExportRefs(), tt.exports) || !reflect.DeepEqual(p.Promote, tt.promote) {
				t.Fatalf("imports %v exports %v promote %+v", p.ImportRefs(), p.ExportRefs(), p.Promote)
			}
		})
	}
}

func TestExporterOptionsPerProvider(t *testing.T) {
	for prov, want := range map[Provider]map[string]string{
		Generic:   {"mode": "max", "image-manifest": "true", "oci-mediatypes": "true", "compression": "zstd"},
		Zot:       {"mode": "max", "image-manifest": "true", "oci-mediatypes": "true", "compression": "zstd"},
		GHCR:      {"mode": "max", "image-manifest": "true", "oci-mediatypes": "true", "compression": "zstd"},
		Harbor:    {"mode": "max", "image-manifest": "true", "oci-mediatypes": "true", "compression": "gzip"},
		DockerHub: {"mode": "max", "oci-mediatypes": "true", "compression": "gzip"},
	} {
		p, err := NewPlan(Input{Registry: "r.io", Workspace: "w", Actor: Actor{Kind: ActorCI}, Provider: prov, IgnoreError: true, Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		want["ref"], want["ignore-error"], want["registry.insecure"] = "r.io/ci/w:cache", "true", "true"
		if got := p.Exports[0].Attrs; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", prov, got, want)
		}
		if p.Imports[0].Attrs["registry.insecure"] != "true" {
			t.Errorf("%s: insecure import %v", prov, p.Imports[0].Attrs)
		}
	}
}

func TestPlanRefusals(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"ci importing dev", Input{Actor: Actor{Kind: ActorCI}, ExtraImports: []string{"r.io/dev/jpl-w:cache"}}, "CI never imports dev/*"},
		{"ci_aux importing elsewhere", Input{Actor: Actor{Kind: ActorCIAux}, ExtraImports: []string{"r.io/lamina/x:1"}}, "ci_aux imports only ci/*"},
		{"upper-case workspace", Input{Workspace: "App", Actor: Actor{Kind: ActorCI}}, `workspace "App"`},
		{"slash in workspace", Input{Workspace: "a/b", Actor: Actor{Kind: ActorCI}}, `workspace "a/b"`},
		{"dotdot actor", Input{Actor: Actor{Kind: ActorHuman, ID: ".."}}, `actor id ".."`},
		{"slash actor", Input{Actor: Actor{Kind: ActorHuman, ID: "a/../../ci/w"}}, "actor id"},
		{"human without id", Input{Actor: Actor{Kind: ActorHuman}}, "needs an id"},
		{"ci with id", Input{Actor: Actor{Kind: ActorCI, ID: "x"}}, "takes no id"},
		{"unknown kind", Input{Actor: Actor{Kind: "robot"}}, "kind must be"},
		{"bad registry", Input{Registry: "http://r.io", Actor: Actor{Kind: ActorCI}}, "HOST[:PORT][/PREFIX]"},
		{"bad disposition", Input{Actor: Actor{Kind: ActorHuman, ID: "j"}, Disposition: "keep"}, `disposition "keep"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in.Registry == "" {
				tt.in.Registry = "r.io"
			}
			if tt.in.Workspace == "" {
				tt.in.Workspace = "w"
			}
			_, err := NewPlan(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// Check holds the rules on any plan, not only on the ones NewPlan makes.
func TestCheckCatchesHandMadePlans(t *testing.T) {
	entry := func(ref string) buildkit.CacheEntry {
		return buildkit.CacheEntry{Type: "registry", Attrs: map[string]string{"ref": ref}}
	}
	session := Input{Registry: "r.io", Workspace: "w", Actor: Actor{Kind: ActorHuman, ID: "jpl"}}
	if err := Check(session, Plan{Exports: []buildkit.CacheEntry{entry("r.io/ci/w:cache")}}); !errors.Is(err, ErrNamespace) {
		t.Errorf("session writing ci/*: %v", err)
	}
	if err := Check(session, Plan{Exports: []buildkit.CacheEntry{entry("r.io/dev/other-w:cache")}}); !errors.Is(err, ErrNamespace) {
		t.Errorf("session writing another actor's dev/: %v", err)
	}
	ci := Input{Registry: "r.io", Workspace: "w", Actor: Actor{Kind: ActorCI}}
	if err := Check(ci, Plan{Imports: []buildkit.CacheEntry{entry("r.io/dev/jpl-w:cache")}}); !errors.Is(err, ErrNamespace) {
		t.Errorf("ci importing dev/*: %v", err)
	}
	if err := Check(ci, Plan{Exports: []buildkit.CacheEntry{entry("r.io/ci/other:cache")}}); !errors.Is(err, ErrNamespace) {
		t.Errorf("ci writing another workspace: %v", err)
	}
}

func TestParseActor(t *testing.T) {
	for in, want := range map[string]Actor{"ci": {Kind: ActorCI}, "human:jpl": {Kind: ActorHuman, ID: "jpl"}, "agent:bot-1": {Kind: ActorAgent, ID: "bot-1"}, "ci_aux": {Kind: ActorCIAux}} {
		got, err := ParseActor(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseActor(%q) = %+v, %v", in, got, err)
		}
	}
}

func TestAuthStringHidesPassword(t *testing.T) {
	a := Auth{Username: "u", Password: "hunter2-secret"}
	if s := a.String(); strings.Contains(s, "hunter2") {
		t.Fatal(s)
	}
}

func TestStateNamespaces(t *testing.T) {
	for _, tt := range []struct {
		actor       Actor
		disp        Disposition
		read, write string
	}{
		{Actor{Kind: ActorCI}, Export, "ci/app", "ci/app"},
		{Actor{Kind: ""}, "", "ci/app", "ci/app"},
		{Actor{Kind: ActorCIAux}, Export, "ci/app", ""},
		{Actor{Kind: ActorHuman, ID: "jpl"}, Export, "dev/jpl-app,ci/app", "dev/jpl-app"},
		{Actor{Kind: ActorAgent, ID: "bot"}, Rollback, "dev/bot-app,ci/app", "dev/bot-app"},
		{Actor{Kind: ActorHuman, ID: "jpl"}, Discard, "dev/jpl-app,ci/app", ""},
	} {
		read, write := StateNamespaces(tt.actor, "app", tt.disp)
		if strings.Join(read, ",") != tt.read || write != tt.write {
			t.Errorf("%v %s: read %v write %q, want %s / %q", tt.actor, tt.disp, read, write, tt.read, tt.write)
		}
	}
}
