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
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lian-build/action/internal/nickel"
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
}

// Load reads every DIR/*/workflow.ncl against the schema. Every file is
// read; the errors of all of them are returned together, each at its
// file:line:col.
func Load(ctx context.Context, dir string) (*Catalog, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", dir, err)
	}
	c := &Catalog{Dir: dir}
	loader := spec.Loader{Eval: spec.DefaultEvaluator()}
	var errs []error
	for _, e := range entries {
		file := filepath.Join(dir, e.Name(), WorkflowFile)
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
	for _, l := range c.Layers {
		if l.Name == name {
			return l
		}
	}
	return nil
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
