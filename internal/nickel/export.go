package nickel

import (
	"context"
	"fmt"
	"math"
)

// Document is an evaluated, fully forced value: JSON-shaped data (map[string]any,
// []any, string, int64, float64, bool, nil) plus where each record field was defined.
type Document struct {
	Value any
	Pos   map[string]Pos // field path ("artifact.image") → position of its definition
}

// Options configure an evaluation.
type Options struct {
	Loader Loader // resolves imports; nil: imports are refused
	Limits Limits
}

// Eval parses and evaluates src (named name, for positions and relative
// imports) and forces the whole result, as `nickel export` does. It stops
// with an error when ctx is done or a bound of opts.Limits is exceeded.
func Eval(ctx context.Context, name string, src []byte, opts Options) (*Document, error) {
	p := &parser{loader: opts.Loader, files: map[string]*sourceFile{}}
	f, err := p.parseFile(name, src)
	if err != nil {
		return nil, err
	}
	ev := newEvaluator(ctx, opts.Limits)
	t := &thunk{e: f.root, env: ev.global, pos: Pos{File: name, Line: 1, Col: 1}}
	ev.files[f] = t
	v, err := ev.force(t)
	if err != nil {
		return nil, err
	}
	doc := &Document{Pos: map[string]Pos{}}
	doc.Value, err = ev.export(v, "", doc.Pos, t.pos)
	if err != nil {
		return nil, err
	}
	return doc, nil
}

func (ev *evaluator) export(v value, path string, pos map[string]Pos, at Pos) (any, error) {
	switch v := v.(type) {
	case vNum:
		f := float64(v)
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	case vStr:
		// The exported document holds one copy per occurrence.
		if err := ev.alloc(int64(len(v)), at); err != nil {
			return nil, err
		}
		return string(v), nil
	case vBool:
		return bool(v), nil
	case vNull:
		return nil, nil
	case vEnum:
		return string(v), nil
	case vArray:
		if err := ev.alloc(int64(len(v))*thunkBytes, at); err != nil {
			return nil, err
		}
		out := make([]any, len(v))
		for i, t := range v {
			x, err := ev.force(t)
			if err != nil {
				return nil, err
			}
			if out[i], err = ev.export(x, fmt.Sprintf("%s[%d]", path, i), pos, t.pos); err != nil {
				return nil, err
			}
		}
		return out, nil
	case *vRecord:
		if err := ev.alloc(int64(len(v.fields))*thunkBytes, at); err != nil {
			return nil, err
		}
		ev.bind(v)
		out := map[string]any{}
		for _, name := range sortedNames(v) {
			fd := v.fields[name]
			p := joinPath(path, name)
			if len(fd.defs) == 0 {
				if fd.optional {
					continue
				}
				return nil, &Error{Pos: fd.pos, Path: p, Msg: "missing definition (the field is declared but has no value)"}
			}
			t := v.inst[name]
			t.path = p
			x, err := ev.force(t)
			if err != nil {
				return nil, err
			}
			pos[p] = fd.defs[len(fd.defs)-1].pos
			if out[name], err = ev.export(x, p, pos, fd.pos); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, &Error{Pos: at, Path: path, Msg: fmt.Sprintf("cannot export a %s", typeName(v))}
}
