// Package lamina reads a catalog of pre-baked layers: one directory per
// layer with a workflow.ncl (schemas/lamina/workflow.ncl) naming its base,
// the tools it provides and the tags it is promoted to. The catalog is a
// DAG; Check enforces it.
package lamina

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/lian-build/action/internal/nickel"
	"github.com/lian-build/action/internal/safefile"
	"github.com/lian-build/action/internal/spec"
)

// WorkflowFile is the file each layer directory holds.
const WorkflowFile = "workflow.ncl"

// Tool is a binary a layer provides and the probe that proves it.
type Tool struct {
	Binary string `json:"binary"`
	Probe  string `json:"probe"`
}

// Base is what a layer builds on: another layer, or an image pinned by digest.
type Base struct {
	Layer string `json:"layer,omitempty"`
	Image string `json:"image,omitempty"`
}

// Layer is one workflow.ncl.
type Layer struct {
	Name       string   `json:"name"`
	Kind       string   `json:"kind"`
	Base       Base     `json:"build_base"`
	Tools      []Tool   `json:"tools_provided"`
	Artifacts  []string `json:"artifact_paths"`
	Dockerfile string   `json:"dockerfile"`
	Context    string   `json:"context"`
	BuildArgs  []string `json:"build_args"`
	RunnerType string   `json:"runner_type,omitempty"`

	// Dir is the layer's directory; File its workflow.ncl.
	Dir, File string
	doc       *nickel.Document
}

// at is an error about a field of the layer's workflow.ncl, at its position.
func (l *Layer) at(field string, err error) error { return spec.FieldAt(l.doc, l.File, field, err) }

// Catalog is the layers of a directory, in directory order.
type Catalog struct {
	Dir    string
	Layers []*Layer
	// Skipped are the catalog's entries that are not layer directories
	// and were not read (symbolic links are never followed), with why.
	Skipped []string
	byName  map[string]*Layer
	indexed int // how many of Layers byName holds
}

// Load reads every DIR/*/workflow.ncl against the schema. Every file is
// read; the errors of all of them are returned together, each at its
// file:line:col.
func Load(ctx context.Context, dir string) (*Catalog, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &DirError{Dir: dir, Err: err}
	}
	c := &Catalog{Dir: dir}
	loader := spec.Loader{Eval: spec.DefaultEvaluator()}
	var errs []error
	for _, e := range entries {
		file := filepath.Join(dir, e.Name(), WorkflowFile)
		if e.Type()&os.ModeSymlink != 0 {
			c.Skipped = append(c.Skipped, quote(e.Name())+": a symbolic link (links are not followed; make it a directory of the catalog)")
			continue
		}
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(file); err != nil {
			errs = append(errs, fmt.Errorf("%s: a layer directory without %s", filepath.Join(dir, e.Name()), WorkflowFile))
			continue
		}
		l, err := loadLayer(ctx, loader, file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.Layers = append(c.Layers, l)
	}
	if len(c.Layers) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("catalog %s: no layer directories (DIR/NAME/%s)", dir, WorkflowFile))
	}
	return c, errors.Join(errs...)
}

// DirError is a catalog directory that cannot be read (bad input).
type DirError struct {
	Dir string
	Err error
}

func (e *DirError) Error() string {
	var pe *fs.PathError
	if errors.As(e.Err, &pe) {
		return fmt.Sprintf("catalog %s: %v", e.Dir, pe.Err)
	}
	return fmt.Sprintf("catalog %s: %v", e.Dir, e.Err)
}
func (e *DirError) Unwrap() error { return e.Err }

func loadLayer(ctx context.Context, loader spec.Loader, file string) (*Layer, error) {
	doc, err := loader.LoadContracted(ctx, file, "lamina/workflow.ncl", "Workflow")
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(doc.Value)
	if err != nil {
		return nil, err
	}
	l := &Layer{Dir: filepath.Dir(file), File: file, doc: doc}
	if err := json.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	if (l.Base.Layer == "") == (l.Base.Image == "") {
		return nil, l.at("build_base", errors.New("give exactly one of layer (a catalog layer) or image (REF@sha256:…)"))
	}
	if l.Base.Image != "" && l.Base.Image != "scratch" && !pinnedRE.MatchString(l.Base.Image) {
		return nil, l.at("build_base.image", fmt.Errorf("%q is not pinned by digest (REF@sha256:<64 hex>, or scratch)", l.Base.Image))
	}
	if len(l.Artifacts) == 0 {
		return nil, l.at("artifact_paths", errors.New("a layer is promoted to at least one tag"))
	}
	for _, a := range l.Artifacts {
		if repo, tag, ok := strings.Cut(a, ":"); !ok || repo != l.Name || tag == "" || strings.ContainsAny(tag, "/@:") {
			return nil, l.at("artifact_paths", fmt.Errorf("%q: want %s:TAG (a layer is promoted under its own name)", a, l.Name))
		}
	}
	return l, nil
}

// Layer is the layer of that name, or nil.
func (c *Catalog) Layer(name string) *Layer {
	// The index covers the layers it was built from (Layers only grows):
	// a catalog with duplicate names is indexed once, not at every call.
	if c.byName == nil || c.indexed != len(c.Layers) {
		c.byName, c.indexed = make(map[string]*Layer, len(c.Layers)), len(c.Layers)
		for _, l := range c.Layers {
			if _, dup := c.byName[l.Name]; !dup {
				c.byName[l.Name] = l
			}
		}
	}
	if name == "" {
		return nil
	}
	return c.byName[name]
}

// nameRE is a registry repository path component: a layer is pushed as
// lamina/NAME, so its name follows those rules (lower-case ASCII only: no
// look-alike of another layer's name).
var nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// maxName bounds a layer name.
const maxName = 64

// validate checks what the schema cannot: the name by the registry's
// rules, every path inside the layer's directory, probes and build
// arguments that cannot inject anything.
func (l *Layer) validate() error {
	if len(l.Name) > maxName || !nameRE.MatchString(l.Name) {
		return l.at("name", fmt.Errorf("%s: want lower-case letters and digits separated by '.', '_', '__' or '-' (a registry repository name), at most %d characters", quote(l.Name), maxName))
	}
	ctxDir, err := safefile.Beneath(l.Dir, l.Dir, l.Context)
	if err != nil {
		return l.at("context", inLayer(err))
	}
	if _, err := safefile.Beneath(l.Dir, ctxDir, l.Dockerfile); err != nil {
		return l.at("dockerfile", inLayer(err))
	}
	for i, t := range l.Tools {
		for field, v := range map[string]string{"binary": t.Binary, "probe": t.Probe} {
			if v == "" || strings.ContainsFunc(v, unicode.IsControl) {
				return l.at(fmt.Sprintf("tools_provided[%d].%s", i, field), fmt.Errorf("%s: must be one line without control characters", quote(v)))
			}
		}
	}
	for i, a := range l.BuildArgs {
		if name, _, ok := strings.Cut(a, "="); !ok || name == "" || strings.ContainsFunc(a, unicode.IsControl) {
			return l.at(fmt.Sprintf("build_args[%d]", i), fmt.Errorf("%s: want NAME=VALUE", quote(a)))
		}
	}
	return nil
}

func inLayer(err error) error {
	var ee *safefile.EscapeError
	if errors.As(err, &ee) {
		return fmt.Errorf("%s leads outside the layer's directory (absolute paths, .. and symbolic links that point outside are refused)", quote(ee.Path))
	}
	return err
}

// quote quotes a value for a message, control characters escaped.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strconv.Quote(s)
}

// Names are the layers' names, sorted.
func (c *Catalog) Names() []string {
	var out []string
	for _, l := range c.Layers {
		out = append(out, l.Name)
	}
	sort.Strings(out)
	return out
}
