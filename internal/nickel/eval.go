package nickel

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/lian-build/action/internal/suggest"
)

// Limits bound evaluation: no unbounded recursion, no endless loops, no
// unbounded memory. The caller's context bounds the time.
type Limits struct {
	MaxSteps int   // evaluation steps (default 1,000,000)
	MaxDepth int   // nested evaluations (default 400)
	MaxBytes int64 // bytes allocated for strings, arrays and records (default 16 MiB)
}

// Default limits.
const (
	DefaultMaxSteps = 1_000_000
	DefaultMaxDepth = 400
	DefaultMaxBytes = 16 << 20
)

// ctxCheckEvery is how many steps pass between checks of the context.
const ctxCheckEvery = 1024

type (
	vNum   float64
	vStr   string
	vBool  bool
	vNull  struct{}
	vEnum  string
	vArray []*thunk
	vFun   struct {
		params []string
		body   expr
		env    *env
		pos    Pos
	}
	vEnumType struct{ tags []string }
	// vContract is a built-in contract: Number, String, Bool, Dyn, Array C.
	vContract struct {
		name string
		elem value
	}
	// vBuiltin is a built-in function (Array, as a contract constructor).
	vBuiltin struct {
		name string
		fn   func(ev *evaluator, arg *thunk, pos Pos) (value, error)
	}
	// vUnsupported stands for a name of full Nickel (std, …) outside the subset.
	vUnsupported struct{ name string }
)

type value any

// vRecord is a recursive record: each field keeps its definitions unevaluated
// (expression + environment without the record itself), so that merging two
// records re-binds the fields' references to siblings, as Nickel does.
type vRecord struct {
	fields map[string]*fieldDef
	open   bool
	path   string
	inst   map[string]*thunk // fields bound to this record, made on first use
	self   *env
}

type fieldDef struct {
	defs      []def
	contracts []contractRef
	optional  bool
	pos       Pos
}

type def struct {
	e     expr
	env   *env
	prio  int // 0 default, 1 normal
	pos   Pos
	value *thunk // a definition that is already a value (merged records)
}

type contractRef struct {
	e   expr
	env *env
	v   value // an evaluated contract (applied from outside the record)
}

type env struct {
	vars   map[string]*thunk
	parent *env
}

func (e *env) lookup(name string) (*thunk, bool) {
	for ; e != nil; e = e.parent {
		if t, ok := e.vars[name]; ok {
			return t, true
		}
	}
	return nil, false
}

func (e *env) with(vars map[string]*thunk) *env { return &env{vars: vars, parent: e} }

type thunk struct {
	e     expr
	env   *env
	fn    func() (value, error)
	v     value
	err   error
	state int // 0 new, 1 evaluating, 2 done
	pos   Pos
	path  string
}

func valueThunk(v value, pos Pos) *thunk { return &thunk{v: v, state: 2, pos: pos} }

type evaluator struct {
	ctx    context.Context
	limits Limits
	steps  int
	depth  int
	bytes  int64
	global *env
	files  map[*sourceFile]*thunk
}

func newEvaluator(ctx context.Context, l Limits) *evaluator {
	if l.MaxSteps <= 0 {
		l.MaxSteps = DefaultMaxSteps
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	ev := &evaluator{ctx: ctx, limits: l, files: map[*sourceFile]*thunk{}}
	g := map[string]*thunk{}
	for _, n := range []string{"Number", "String", "Bool", "Dyn"} {
		g[n] = valueThunk(&vContract{name: n}, Pos{})
	}
	g["Array"] = valueThunk(&vBuiltin{name: "Array", fn: func(ev *evaluator, arg *thunk, pos Pos) (value, error) {
		c, err := ev.force(arg)
		if err != nil {
			return nil, err
		}
		return &vContract{name: "Array", elem: c}, nil
	}}, Pos{})
	for _, n := range []string{"std", "Record", "Function"} {
		g[n] = valueThunk(&vUnsupported{name: n}, Pos{})
	}
	ev.global = &env{vars: g}
	return ev
}

func (ev *evaluator) force(t *thunk) (value, error) {
	switch t.state {
	case 2:
		return t.v, t.err
	case 1:
		return nil, &Error{Pos: t.pos, Path: t.path, Msg: "infinite recursion: the value depends on itself"}
	}
	t.state = 1
	var v value
	var err error
	if t.fn != nil {
		v, err = t.fn()
	} else {
		v, err = ev.eval(t.e, t.env)
	}
	if err != nil {
		if e, ok := err.(*Error); ok && e.Path == "" && t.path != "" {
			e.Path = t.path
		}
	}
	if r, ok := v.(*vRecord); ok && t.path != "" && r.path == "" {
		v = r.withPath(t.path)
	}
	t.v, t.err, t.state = v, err, 2
	t.e, t.env, t.fn = nil, nil, nil
	return v, err
}

func (r *vRecord) withPath(p string) *vRecord {
	return &vRecord{fields: r.fields, open: r.open, path: p}
}

// demoted is the record with every field definition at default priority.
func (r *vRecord) demoted() *vRecord {
	out := &vRecord{fields: make(map[string]*fieldDef, len(r.fields)), open: r.open, path: r.path}
	for name, fd := range r.fields {
		cp := *fd
		cp.defs = make([]def, len(fd.defs))
		for i, d := range fd.defs {
			d.prio = 0
			cp.defs[i] = d
		}
		out.fields[name] = &cp
	}
	return out
}

func (r *vRecord) child(name string) string {
	if r.path == "" {
		return name
	}
	return r.path + "." + name
}

// alloc accounts for n bytes about to be allocated at pos.
func (ev *evaluator) alloc(n int64, pos Pos) error {
	ev.bytes += n
	if n < 0 || ev.bytes > ev.limits.MaxBytes {
		return errAt(pos, "evaluation allocates more than %d bytes (strings, arrays and records)", ev.limits.MaxBytes)
	}
	return nil
}

// step counts one evaluation step against the bounds and the context.
func (ev *evaluator) step(p Pos) error {
	ev.steps++
	if ev.steps > ev.limits.MaxSteps {
		return errAt(p, "evaluation exceeds %d steps", ev.limits.MaxSteps)
	}
	if ev.steps%ctxCheckEvery == 0 {
		if err := ev.ctx.Err(); err != nil {
			return errAt(p, "evaluation stopped: %v", context.Cause(ev.ctx))
		}
	}
	if ev.depth > ev.limits.MaxDepth {
		return errAt(p, "evaluation nested deeper than %d", ev.limits.MaxDepth)
	}
	return nil
}

func (ev *evaluator) eval(e expr, en *env) (value, error) {
	ev.depth++
	defer func() { ev.depth-- }()
	if err := ev.step(e.position()); err != nil {
		return nil, err
	}
	switch e := e.(type) {
	case *numLit:
		return vNum(e.v), nil
	case *boolLit:
		return vBool(e.v), nil
	case *nullLit:
		return vNull{}, nil
	case *enumLit:
		return vEnum(e.tag), nil
	case *enumType:
		return &vEnumType{tags: e.tags}, nil
	case *strLit:
		return ev.strLit(e, en)
	case *arrayLit:
		return ev.arrayLit(e, en)
	case *varRef:
		return ev.varRef(e, en)
	case *letExpr:
		t := &thunk{e: e.value, env: en, pos: e.value.position()}
		return ev.eval(e.body, en.with(map[string]*thunk{e.name: t}))
	case *funExpr:
		return &vFun{params: e.params, body: e.body, env: en, pos: e.pos}, nil
	case *appExpr:
		fv, err := ev.eval(e.fn, en)
		if err != nil {
			return nil, err
		}
		return ev.apply(fv, &thunk{e: e.arg, env: en, pos: e.arg.position()}, e.pos)
	case *accessExpr:
		return ev.access(e, en)
	case *importExpr:
		t, ok := ev.files[e.file]
		if !ok {
			t = &thunk{e: e.file.root, env: ev.global, pos: e.pos}
			ev.files[e.file] = t
		}
		return ev.force(t)
	case *mergeExpr:
		l, err := ev.eval(e.l, en)
		if err != nil {
			return nil, err
		}
		r, err := ev.eval(e.r, en)
		if err != nil {
			return nil, err
		}
		return ev.merge(l, r, e.pos, "")
	case *annotExpr:
		return ev.annot(e, en)
	case *recordLit:
		return ev.recordLit(e, en)
	}
	return nil, errAt(e.position(), "internal: unknown expression %T", e)
}

func (ev *evaluator) access(e *accessExpr, en *env) (value, error) {
	rv, err := ev.eval(e.rec, en)
	if err != nil {
		return nil, err
	}
	if u, ok := rv.(*vUnsupported); ok {
		return nil, errAt(e.pos, "%s.%s is %s", u.name, e.field, unsupported)
	}
	r, ok := rv.(*vRecord)
	if !ok {
		return nil, errAt(e.pos, "cannot access field %q of %s", e.field, typeName(rv))
	}
	t, err := ev.field(r, e.field, e.pos)
	if err != nil {
		return nil, err
	}
	return ev.force(t)
}

func (ev *evaluator) annot(e *annotExpr, en *env) (value, error) {
	v, err := ev.eval(e.e, en)
	if err != nil {
		return nil, err
	}
	for _, c := range e.contracts {
		cv, err := ev.eval(c, en)
		if err != nil {
			return nil, err
		}
		if v, err = ev.applyContract(cv, v, c.position(), e.e.position(), ""); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (ev *evaluator) arrayLit(e *arrayLit, en *env) (value, error) {
	if err := ev.alloc(int64(len(e.elems))*thunkBytes, e.pos); err != nil {
		return nil, err
	}
	a := make(vArray, len(e.elems))
	for i, el := range e.elems {
		a[i] = &thunk{e: el, env: en, pos: el.position()}
	}
	return a, nil
}

func (ev *evaluator) varRef(e *varRef, en *env) (value, error) {
	t, ok := en.lookup(e.name)
	if !ok {
		return nil, errAt(e.pos, "unbound identifier %q", e.name)
	}
	v, err := ev.force(t)
	if err != nil {
		return nil, err
	}
	if u, ok := v.(*vUnsupported); ok {
		return nil, errAt(e.pos, "%s is %s", u.name, unsupported)
	}
	return v, nil
}

// thunkBytes is what one array element or record field costs, roughly.
const thunkBytes = 64

// strLit builds a string with interpolations, accounting for its length
// before it is allocated (doubling a string in a chain of lets grows
// exponentially).
func (ev *evaluator) strLit(e *strLit, en *env) (value, error) {
	parts := make([]string, len(e.parts))
	var n int64
	for i, p := range e.parts {
		if !p.isExpr {
			parts[i] = p.lit
		} else {
			v, err := ev.eval(p.e, en)
			if err != nil {
				return nil, err
			}
			if parts[i], err = interpolate(v, p.e.position()); err != nil {
				return nil, err
			}
		}
		n += int64(len(parts[i]))
	}
	if len(e.parts) > 1 || (len(e.parts) == 1 && e.parts[0].isExpr) {
		if err := ev.alloc(n, e.pos); err != nil {
			return nil, err
		}
	}
	return vStr(strings.Join(parts, "")), nil
}

func interpolate(v value, pos Pos) (string, error) {
	switch v := v.(type) {
	case vStr:
		return string(v), nil
	case vNum:
		return fmtNum(float64(v)), nil
	case vBool:
		return strconv.FormatBool(bool(v)), nil
	case vEnum:
		return string(v), nil
	}
	return "", errAt(pos, "cannot interpolate %s into a string", typeName(v))
}

func fmtNum(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func (ev *evaluator) apply(fv value, arg *thunk, pos Pos) (value, error) {
	switch f := fv.(type) {
	case *vFun:
		en := f.env.with(map[string]*thunk{f.params[0]: arg})
		if len(f.params) > 1 {
			return &vFun{params: f.params[1:], body: f.body, env: en, pos: f.pos}, nil
		}
		return ev.eval(f.body, en)
	case *vBuiltin:
		return f.fn(ev, arg, pos)
	}
	return nil, errAt(pos, "cannot apply %s: it is not a function", typeName(fv))
}

// recordLit turns a literal into a record value: nested paths become nested
// record definitions, repeated fields become several definitions to merge.
func (ev *evaluator) recordLit(e *recordLit, en *env) (value, error) {
	if err := ev.alloc(int64(len(e.fields))*thunkBytes, e.pos); err != nil {
		return nil, err
	}
	r := &vRecord{fields: map[string]*fieldDef{}, open: e.open}
	for _, f := range e.fields {
		name := f.path[0]
		fd := r.fields[name]
		if fd == nil {
			fd = &fieldDef{pos: f.pos}
			r.fields[name] = fd
		}
		if len(f.path) > 1 {
			// a.b.c = v is a = { b.c = v }
			inner := &recordLit{pos: f.pos, fields: []fieldLit{{pos: f.pos, path: f.path[1:], value: f.value, contracts: f.contracts, optional: f.optional, isDefault: f.isDefault}}}
			fd.defs = append(fd.defs, def{e: inner, env: en, prio: 1, pos: f.pos})
			continue
		}
		for _, c := range f.contracts {
			fd.contracts = append(fd.contracts, contractRef{e: c, env: en})
		}
		fd.optional = fd.optional || f.optional
		if f.value != nil {
			prio := 1
			if f.isDefault {
				prio = 0
			}
			fd.defs = append(fd.defs, def{e: f.value, env: en, prio: prio, pos: f.value.position()})
		}
	}
	return r, nil
}

// bind gives the record's fields thunks that see the record itself.
func (ev *evaluator) bind(r *vRecord) {
	if r.inst != nil {
		return
	}
	r.inst = map[string]*thunk{}
	r.self = &env{vars: r.inst}
	for name, fd := range r.fields {
		name, fd := name, fd
		t := &thunk{pos: fd.pos, path: r.child(name)}
		t.fn = func() (value, error) { return ev.fieldValue(r, name, fd) }
		r.inst[name] = t
	}
}

func (ev *evaluator) field(r *vRecord, name string, pos Pos) (*thunk, error) {
	ev.bind(r)
	t, ok := r.inst[name]
	if !ok {
		return nil, errAt(pos, "no field %q%s%s", name, inRecord(r), didYouMean(name, fieldNames(r)))
	}
	fd := r.fields[name]
	if len(fd.defs) == 0 {
		return nil, &Error{Pos: pos, Path: r.child(name), Msg: "missing definition (the field is declared but has no value)"}
	}
	return t, nil
}

func inRecord(r *vRecord) string {
	if r.path == "" {
		return ""
	}
	return " in " + r.path
}

// fieldValue evaluates a field: the definitions of the highest priority,
// merged, then the field's contracts.
func (ev *evaluator) fieldValue(r *vRecord, name string, fd *fieldDef) (value, error) {
	path := r.child(name)
	type evaluated struct {
		v    value
		prio int
		pos  Pos
	}
	vals := make([]evaluated, 0, len(fd.defs))
	allRecords := true
	for _, d := range fd.defs {
		var dv value
		var err error
		if d.value != nil {
			dv, err = ev.force(d.value)
		} else {
			dv, err = ev.eval(d.e, d.env.with(r.self.vars))
		}
		if err != nil {
			return nil, err
		}
		if rec, ok := dv.(*vRecord); ok {
			if d.prio == 0 {
				// A default record is a default for each of its fields, all the way down.
				rec = rec.demoted()
			}
			dv = rec.withPath(path)
		} else {
			allRecords = false
		}
		vals = append(vals, evaluated{dv, d.prio, d.pos})
	}
	top := 0
	for _, x := range vals {
		top = max(top, x.prio)
	}
	var v value
	var vpos Pos
	for _, x := range vals {
		// Records merge whatever their priority (their fields carry it); other
		// values of a lower priority give way.
		if x.prio != top && !allRecords {
			continue
		}
		if v == nil {
			v, vpos = x.v, x.pos
			continue
		}
		var err error
		if v, err = ev.merge(v, x.v, x.pos, path); err != nil {
			return nil, err
		}
	}
	if v == nil {
		return nil, &Error{Pos: fd.pos, Path: path, Msg: "missing definition (the field is declared but has no value)"}
	}
	for _, c := range fd.contracts {
		cv := c.v
		if cv == nil {
			var err error
			if cv, err = ev.eval(c.e, c.env.with(r.self.vars)); err != nil {
				return nil, err
			}
		}
		var err error
		cpos := vpos
		if c.e != nil {
			cpos = c.e.position()
		}
		if v, err = ev.applyContract(cv, v, cpos, vpos, path); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// merge implements &: records merge field by field (late-bound), equal
// values merge to themselves, anything else conflicts.
func (ev *evaluator) merge(a, b value, pos Pos, path string) (value, error) {
	ra, okA := a.(*vRecord)
	rb, okB := b.(*vRecord)
	if okA && okB {
		out := &vRecord{fields: map[string]*fieldDef{}, open: ra.open || rb.open, path: path}
		for _, src := range []*vRecord{ra, rb} {
			for name, fd := range src.fields {
				cur := out.fields[name]
				if cur == nil {
					cp := *fd
					cp.defs = append([]def(nil), fd.defs...)
					cp.contracts = append([]contractRef(nil), fd.contracts...)
					out.fields[name] = &cp
					continue
				}
				cur.defs = append(cur.defs, fd.defs...)
				cur.contracts = append(cur.contracts, fd.contracts...)
				cur.optional = cur.optional && fd.optional
			}
		}
		return out, nil
	}
	if _, ok := a.(*vFun); ok {
		return nil, &Error{Pos: pos, Path: path, Msg: "cannot merge a function"}
	}
	if _, ok := b.(*vFun); ok {
		return nil, &Error{Pos: pos, Path: path, Msg: "cannot merge a function"}
	}
	eq, err := ev.equal(a, b)
	if err != nil {
		return nil, err
	}
	if !eq {
		return nil, &Error{Pos: pos, Path: path, Msg: fmt.Sprintf("conflicting values %s and %s (merge needs equal values, or one of them | default)", show(a), show(b))}
	}
	return a, nil
}

func (ev *evaluator) equal(a, b value) (bool, error) {
	switch a := a.(type) {
	case vNum, vStr, vBool, vNull, vEnum:
		return a == b, nil
	case vArray:
		bb, ok := b.(vArray)
		if !ok || len(a) != len(bb) {
			return false, nil
		}
		for i := range a {
			x, err := ev.force(a[i])
			if err != nil {
				return false, err
			}
			y, err := ev.force(bb[i])
			if err != nil {
				return false, err
			}
			if eq, err := ev.equal(x, y); err != nil || !eq {
				return false, err
			}
		}
		return true, nil
	}
	return false, nil
}

// applyContract checks v against contract c. Record contracts merge into the
// value (filling defaults); unknown fields are refused with a suggestion.
func (ev *evaluator) applyContract(c, v value, cpos, vpos Pos, path string) (value, error) {
	fail := func(format string, a ...any) error {
		return &Error{Pos: vpos, Path: path, Msg: fmt.Sprintf(format, a...)}
	}
	switch c := c.(type) {
	case *vContract:
		switch c.name {
		case "Dyn":
			return v, nil
		case "Number":
			if _, ok := v.(vNum); !ok {
				return nil, fail("expected Number, got %s", typeName(v))
			}
		case "String":
			if _, ok := v.(vStr); !ok {
				return nil, fail("expected String, got %s", typeName(v))
			}
		case "Bool":
			if _, ok := v.(vBool); !ok {
				return nil, fail("expected Bool, got %s", typeName(v))
			}
		case "Array":
			a, ok := v.(vArray)
			if !ok {
				return nil, fail("expected Array, got %s", typeName(v))
			}
			out := make(vArray, len(a))
			for i, el := range a {
				el, i := el, i
				out[i] = &thunk{pos: el.pos, path: fmt.Sprintf("%s[%d]", path, i), fn: func() (value, error) {
					x, err := ev.force(el)
					if err != nil {
						return nil, err
					}
					return ev.applyContract(c.elem, x, cpos, el.pos, fmt.Sprintf("%s[%d]", path, i))
				}}
			}
			return out, nil
		}
		return v, nil
	case *vEnumType:
		e, ok := v.(vEnum)
		if !ok {
			return nil, fail("expected one of %s, got %s", enumList(c.tags), typeName(v))
		}
		for _, t := range c.tags {
			if t == string(e) {
				return v, nil
			}
		}
		return nil, fail("'%s is not one of %s%s", e, enumList(c.tags), didYouMean(string(e), c.tags))
	case *vRecord:
		r, ok := v.(*vRecord)
		if !ok {
			return nil, fail("expected a record, got %s", typeName(v))
		}
		if !c.open {
			known := fieldNames(c)
			for _, name := range sortedNames(r) {
				if _, ok := c.fields[name]; !ok {
					return nil, &Error{Pos: r.fields[name].pos, Path: joinPath(path, name), Msg: "unknown field" + didYouMean(name, known)}
				}
			}
		}
		for _, name := range sortedNames(c) {
			fd := c.fields[name]
			if _, ok := r.fields[name]; !ok && !fd.optional && len(fd.defs) == 0 {
				return nil, &Error{Pos: vpos, Path: joinPath(path, name), Msg: "missing required field"}
			}
		}
		m, err := ev.merge(r, c, vpos, path)
		if err != nil {
			return nil, err
		}
		m.(*vRecord).open = r.open
		return m, nil
	case *vFun:
		return nil, errAt(cpos, "custom contracts (functions) are %s", unsupported)
	}
	return nil, errAt(cpos, "%s is not a contract", typeName(c))
}

func joinPath(p, name string) string {
	if p == "" {
		return name
	}
	return p + "." + name
}

func enumList(tags []string) string {
	q := make([]string, len(tags))
	for i, t := range tags {
		q[i] = "'" + t
	}
	return strings.Join(q, ", ")
}

func fieldNames(r *vRecord) []string { return sortedNames(r) }

func sortedNames(r *vRecord) []string {
	n := make([]string, 0, len(r.fields))
	for k := range r.fields {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func typeName(v value) string {
	switch v.(type) {
	case vNum:
		return "Number"
	case vStr:
		return "String"
	case vBool:
		return "Bool"
	case vNull:
		return "null"
	case vEnum:
		return "enum tag"
	case vArray:
		return "Array"
	case *vRecord:
		return "Record"
	case *vFun, *vBuiltin:
		return "Function"
	case *vEnumType, *vContract:
		return "contract"
	}
	return fmt.Sprintf("%T", v)
}

func show(v value) string {
	switch v := v.(type) {
	case vStr:
		return strconv.Quote(string(v))
	case vNum:
		return fmtNum(float64(v))
	case vBool:
		return strconv.FormatBool(bool(v))
	case vEnum:
		return "'" + string(v)
	}
	return typeName(v)
}

// didYouMean names the closest known name when it is close enough to be a typo.
func didYouMean(name string, known []string) string {
	if best, ok := suggest.Nearest(name, known); ok {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}
