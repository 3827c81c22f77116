package spec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lian-build/action/internal/nickel"
	"github.com/lian-build/action/internal/safefile"
	"github.com/lian-build/action/internal/sizing"
)

// Directives is a BuildDirectives value (schemas/build_directives.ncl).
type Directives struct {
	Workspace        string      `json:"workspace"`
	Artifact         *Artifact   `json:"artifact,omitempty"`
	ComputeProvider  string      `json:"compute_provider"`
	RegistryProvider string      `json:"registry_provider"`
	Registry         string      `json:"registry,omitempty"`
	CachePolicy      CachePolicy `json:"cache_policy"`
	RunnerOverride   string      `json:"runner_override,omitempty"`
	StateStore       string      `json:"state_store,omitempty"`
	Lamina           []string    `json:"lamina,omitempty"`
	NatsEvents       *NatsEvents `json:"nats_events,omitempty"`
}

// Artifact is what to build.
type Artifact struct {
	Image      string `json:"image"`
	Dockerfile string `json:"dockerfile,omitempty"`
	Context    string `json:"context,omitempty"`
	Target     string `json:"target,omitempty"`
}

// CachePolicy says who builds and what happens to the cache.
type CachePolicy struct {
	Actor        string   `json:"actor"`
	ActorID      string   `json:"actor_id,omitempty"`
	Disposition  string   `json:"disposition"`
	ExtraImports []string `json:"extra_imports"`
}

// NatsEvents is where lifecycle events go.
type NatsEvents struct {
	URL    string `json:"url"`
	Prefix string `json:"prefix"`
}

// LoadDirectives evaluates a directives file against BuildDirectives.
// Relative paths in artifact (context, dockerfile) are made relative to the
// file; every path must resolve, symbolic links included, inside the
// checkout (Loader.Checkout, else CheckoutOf the file), or it is refused.
func (l Loader) LoadDirectives(ctx context.Context, path string) (Directives, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Directives{}, err
	}
	if _, err := os.Stat(abs); err != nil {
		return Directives{}, &MissingError{Path: path}
	}
	// A repository's directives file is its own: one that resolves (through
	// a linked directory, say) outside its checkout is never read.
	if l.Checkout != "" {
		if err := safefile.Confine(l.Checkout, abs); err != nil {
			return Directives{}, &FieldError{Pos: nickel.Pos{File: path}, Field: "(file)", Err: fmt.Errorf("leads outside the repository's checkout (a symbolic link); not read")}
		}
	}
	doc, err := l.Eval.contracted(ctx, filepath.Dir(abs), abs, "build_directives.ncl", "BuildDirectives")
	if err != nil {
		return Directives{}, err
	}
	var d Directives
	if err := decode(doc, &d); err != nil {
		return Directives{}, fmt.Errorf("%s: %w", path, err)
	}
	table := l.Table
	if table == nil {
		table = sizing.HCloud
	}
	if d.RunnerOverride != "" {
		t, err := table.Lookup(d.RunnerOverride)
		if err != nil {
			return d, fieldErr(doc, abs, "runner_override", err)
		}
		d.RunnerOverride = t.Name
	}
	if (d.CachePolicy.Actor == "human" || d.CachePolicy.Actor == "agent") && d.CachePolicy.ActorID == "" {
		return d, fieldErr(doc, abs, "cache_policy.actor_id", fmt.Errorf("required for actor '%s", d.CachePolicy.Actor))
	}
	root := l.Checkout
	if root == "" {
		root = CheckoutOf(abs)
	}
	if a := d.Artifact; a != nil {
		for _, f := range []struct {
			field string
			p     *string
		}{{"artifact.context", &a.Context}, {"artifact.dockerfile", &a.Dockerfile}} {
			if *f.p == "" {
				continue
			}
			p, err := safefile.Beneath(root, filepath.Dir(abs), *f.p)
			if err != nil {
				return d, fieldErr(doc, abs, f.field, err)
			}
			*f.p = p
		}
	}
	if d.StateStore != "" && d.StateStore != "volumes" {
		if _, err := safefile.Beneath(root, filepath.Dir(abs), d.StateStore); err != nil {
			return d, fieldErr(doc, abs, "state_store", fmt.Errorf("%w; a state store outside the checkout is the operator's: give --state-store", err))
		}
	}
	return d, nil
}

// CheckoutOf is the checkout a directives file belongs to: the nearest
// directory above it holding .git, else the file's directory (its parent
// for a file in .lian/).
func CheckoutOf(file string) string {
	dir := filepath.Dir(file)
	for d := dir; ; {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if filepath.Base(dir) == ".lian" {
		return filepath.Dir(dir)
	}
	return dir
}
