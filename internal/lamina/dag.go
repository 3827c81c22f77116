package lamina

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// pinnedRE is an image reference pinned by digest.
var pinnedRE = regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)

// Check enforces the DAG: unique names, every layer base in the catalog,
// no cycle (named, base first). Every problem is reported, each at its
// position.
func (c *Catalog) Check() error {
	var errs []error
	first := map[string]*Layer{}
	for _, l := range c.Layers {
		if prev, ok := first[l.Name]; ok {
			errs = append(errs, l.at("name", fmt.Errorf("%q is also the name of %s", l.Name, prev.File)))
			continue
		}
		first[l.Name] = l
	}
	for _, l := range c.Layers {
		if b := l.Base.Layer; b != "" && first[b] == nil {
			errs = append(errs, l.at("build_base.layer", fmt.Errorf("no layer %q in the catalog (layers: %s)", b, strings.Join(c.Names(), ", "))))
		}
	}
	if len(errs) == 0 {
		if cycle := c.cycle(); cycle != nil {
			l := c.Layer(cycle[0])
			errs = append(errs, l.at("build_base.layer", fmt.Errorf("cycle: %s", strings.Join(cycle, " → "))))
		}
	}
	return errors.Join(errs...)
}

// cycle is a cycle of bases (each layer, then the layer it builds on, back
// to the first), or nil. Every layer has at most one base, so one walk per
// chain with three colours finds it in linear time.
func (c *Catalog) cycle() []string {
	const (
		white = iota
		grey  // on the walk in progress
		black // known to end outside any cycle
	)
	colour := make(map[string]int, len(c.Layers))
	for _, start := range c.Layers {
		var path []string
		at := map[string]int{}
		cur := start
		for cur != nil && colour[cur.Name] == white {
			colour[cur.Name] = grey
			at[cur.Name] = len(path)
			path = append(path, cur.Name)
			cur = c.Layer(cur.Base.Layer)
		}
		if cur != nil && colour[cur.Name] == grey {
			return append(path[at[cur.Name]:], cur.Name)
		}
		for _, n := range path {
			colour[n] = black
		}
	}
	return nil
}

// Order is the layers in build order, by level: every layer of a level
// builds on an external image or a layer of an earlier level, so the
// layers of one level can build at once. Check first.
func (c *Catalog) Order() [][]*Layer {
	level := map[string]int{}
	var depth func(l *Layer) int
	depth = func(l *Layer) int {
		if d, ok := level[l.Name]; ok {
			return d
		}
		d := 0
		if b := c.Layer(l.Base.Layer); b != nil {
			d = depth(b) + 1
		}
		level[l.Name] = d
		return d
	}
	var out [][]*Layer
	for _, l := range c.Layers {
		d := depth(l)
		for len(out) <= d {
			out = append(out, nil)
		}
		out[d] = append(out[d], l)
	}
	for _, lv := range out {
		sort.Slice(lv, func(i, j int) bool { return lv[i].Name < lv[j].Name })
	}
	return out
}

// LevelNames is Order by name: one list of layer names per level.
func (c *Catalog) LevelNames() [][]string {
	var out [][]string
	for _, lv := range c.Order() {
		var names []string
		for _, l := range lv {
			names = append(names, l.Name)
		}
		out = append(out, names)
	}
	return out
}

// Dependents are the layers that build on name, directly or not.
func (c *Catalog) Dependents(name string) []string {
	var out []string
	for _, l := range c.Layers {
		for b := c.Layer(l.Base.Layer); b != nil; b = c.Layer(b.Base.Layer) {
			if b.Name == name {
				out = append(out, l.Name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// Unused are the layers no other layer builds on: the catalog's ends.
func (c *Catalog) Unused() []string {
	used := map[string]bool{}
	for _, l := range c.Layers {
		used[l.Base.Layer] = true
	}
	var out []string
	for _, l := range c.Layers {
		if !used[l.Name] {
			out = append(out, l.Name)
		}
	}
	sort.Strings(out)
	return out
}
