package nickel

import (
	"strconv"
	"strings"
)

// Loader reads imported files. Resolve turns an import path, relative to the
// importing file, into a canonical name; Read returns that file's text.
type Loader interface {
	Resolve(from, path string) (string, error)
	Read(name string) ([]byte, error)
}

type sourceFile struct {
	name string
	root expr
}

type parser struct {
	toks   []token
	i      int
	loader Loader
	files  map[string]*sourceFile // parsed files, by canonical name
	stack  []string               // files being parsed (import cycle detection)
	depth  int
}

const maxParseDepth = 200

func (p *parser) parseFile(name string, src []byte) (*sourceFile, error) {
	if f, ok := p.files[name]; ok {
		return f, nil
	}
	for _, s := range p.stack {
		if s == name {
			return nil, &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: "import cycle: " + strings.Join(append(p.stack, name), " → ")}
		}
	}
	toks, err := lex(name, string(src))
	if err != nil {
		return nil, err
	}
	saved, savedI := p.toks, p.i
	p.toks, p.i = toks, 0
	p.stack = append(p.stack, name)
	defer func() { p.toks, p.i = saved, savedI; p.stack = p.stack[:len(p.stack)-1] }()
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, errAt(t.pos, "unexpected %s after the end of the expression", t)
	}
	f := &sourceFile{name: name, root: e}
	p.files[name] = f
	return f, nil
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isPunct(s string) bool {
	t := p.peek()
	return t.kind == tPunct && t.text == s
}

func (p *parser) isKeyword(s string) bool {
	t := p.peek()
	return t.kind == tIdent && t.text == s
}

func (p *parser) expect(s string) (token, error) {
	t := p.next()
	if t.kind != tPunct || t.text != s {
		return t, errAt(t.pos, "expected %q, found %s", s, t)
	}
	return t, nil
}

var keywords = map[string]bool{"let": true, "in": true, "fun": true, "import": true, "true": true, "false": true, "null": true,
	"if": true, "then": true, "else": true, "match": true, "rec": true, "forall": true, "default": true, "optional": true, "force": true,
	"priority": true, "doc": true, "not_exported": true}

// expr := let | fun | annotated
func (p *parser) expr() (expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxParseDepth {
		return nil, errAt(p.peek().pos, "expression nested too deeply")
	}
	t := p.peek()
	if t.kind == tIdent {
		switch t.text {
		case "let":
			return p.let()
		case "fun":
			return p.fun()
		case "if", "match", "forall":
			return nil, errAt(t.pos, "%q is %s", t.text, unsupported)
		}
	}
	return p.annotated()
}

func (p *parser) let() (expr, error) {
	kw := p.next()
	if p.isKeyword("rec") {
		return nil, errAt(p.peek().pos, "let rec is %s", unsupported)
	}
	name := p.next()
	if name.kind != tIdent || keywords[name.text] {
		return nil, errAt(name.pos, "expected a name after let, found %s", name)
	}
	var contracts []expr
	for p.isPunct("|") || p.isPunct(":") {
		p.next()
		c, err := p.application()
		if err != nil {
			return nil, err
		}
		contracts = append(contracts, c)
	}
	if _, err := p.expect("="); err != nil {
		return nil, err
	}
	v, err := p.expr()
	if err != nil {
		return nil, err
	}
	if len(contracts) > 0 {
		v = &annotExpr{pos: v.position(), e: v, contracts: contracts}
	}
	if p.isPunct(",") {
		return nil, errAt(p.peek().pos, "several bindings in one let are %s; write let … in let … in", unsupported)
	}
	if in := p.next(); in.kind != tIdent || in.text != "in" {
		return nil, errAt(in.pos, "expected \"in\" after let %s = …, found %s", name.text, in)
	}
	body, err := p.expr()
	if err != nil {
		return nil, err
	}
	return &letExpr{pos: kw.pos, name: name.text, value: v, body: body}, nil
}

func (p *parser) fun() (expr, error) {
	kw := p.next()
	var params []string
	for !p.isPunct("=>") {
		t := p.next()
		if t.kind != tIdent || keywords[t.text] {
			if t.kind == tPunct && t.text == "{" {
				return nil, errAt(t.pos, "destructuring patterns are %s", unsupported)
			}
			return nil, errAt(t.pos, "expected a parameter name or =>, found %s", t)
		}
		params = append(params, t.text)
	}
	p.next()
	if len(params) == 0 {
		return nil, errAt(kw.pos, "fun needs at least one parameter")
	}
	body, err := p.expr()
	if err != nil {
		return nil, err
	}
	return &funExpr{pos: kw.pos, params: params, body: body}, nil
}

// annotated := merge ('|' contract)*
func (p *parser) annotated() (expr, error) {
	e, err := p.merge()
	if err != nil {
		return nil, err
	}
	var contracts []expr
	for p.isPunct("|") || p.isPunct(":") {
		p.next()
		c, err := p.application()
		if err != nil {
			return nil, err
		}
		contracts = append(contracts, c)
	}
	if len(contracts) == 0 {
		return e, nil
	}
	return &annotExpr{pos: e.position(), e: e, contracts: contracts}, nil
}

func (p *parser) merge() (expr, error) {
	l, err := p.application()
	if err != nil {
		return nil, err
	}
	for p.isPunct("&") {
		op := p.next()
		r, err := p.application()
		if err != nil {
			return nil, err
		}
		l = &mergeExpr{pos: op.pos, l: l, r: r}
	}
	return l, nil
}

func (p *parser) startsAtom() bool {
	t := p.peek()
	switch t.kind {
	case tNum, tStr, tEnum:
		return true
	case tIdent:
		return !keywords[t.text] || t.text == "true" || t.text == "false" || t.text == "null" || t.text == "import"
	case tPunct:
		return t.text == "{" || t.text == "[" || t.text == "(" || t.text == "[|"
	}
	return false
}

// application := access access*
func (p *parser) application() (expr, error) {
	if p.isKeyword("fun") || p.isKeyword("let") {
		return p.expr()
	}
	fn, err := p.access()
	if err != nil {
		return nil, err
	}
	for p.startsAtom() {
		arg, err := p.access()
		if err != nil {
			return nil, err
		}
		fn = &appExpr{pos: fn.position(), fn: fn, arg: arg}
	}
	return fn, nil
}

func (p *parser) access() (expr, error) {
	e, err := p.atom()
	if err != nil {
		return nil, err
	}
	for p.isPunct(".") {
		p.next()
		t := p.next()
		switch {
		case t.kind == tIdent:
			e = &accessExpr{pos: t.pos, rec: e, field: t.text}
		case t.kind == tStr && len(t.parts) <= 1 && (len(t.parts) == 0 || !t.parts[0].isExpr):
			name := ""
			if len(t.parts) == 1 {
				name = t.parts[0].lit
			}
			e = &accessExpr{pos: t.pos, rec: e, field: name}
		default:
			return nil, errAt(t.pos, "expected a field name after '.', found %s", t)
		}
	}
	return e, nil
}

func (p *parser) atom() (expr, error) {
	t := p.next()
	switch t.kind {
	case tNum:
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, errAt(t.pos, "invalid number %s", t.text)
		}
		return &numLit{pos: t.pos, v: v}, nil
	case tStr:
		return p.str(t)
	case tEnum:
		return &enumLit{pos: t.pos, tag: t.text}, nil
	case tIdent:
		switch t.text {
		case "true", "false":
			return &boolLit{pos: t.pos, v: t.text == "true"}, nil
		case "null":
			return &nullLit{pos: t.pos}, nil
		case "import":
			return p.importExpr(t)
		}
		if keywords[t.text] {
			return nil, errAt(t.pos, "unexpected keyword %q", t.text)
		}
		return &varRef{pos: t.pos, name: t.text}, nil
	case tPunct:
		switch t.text {
		case "(":
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(")"); err != nil {
				return nil, err
			}
			return e, nil
		case "[":
			return p.array(t)
		case "{":
			return p.record(t)
		case "[|":
			return p.enumType(t)
		}
	}
	return nil, errAt(t.pos, "unexpected %s", t)
}

func (p *parser) str(t token) (expr, error) {
	s := &strLit{pos: t.pos}
	for _, part := range t.parts {
		if !part.isExpr {
			s.parts = append(s.parts, strPiece{lit: part.lit})
			continue
		}
		sub := &parser{toks: part.interp, loader: p.loader, files: p.files, stack: p.stack, depth: p.depth}
		e, err := sub.expr()
		if err != nil {
			return nil, err
		}
		if tk := sub.peek(); tk.kind != tEOF {
			return nil, errAt(tk.pos, "unexpected %s in %%{ … }", tk)
		}
		s.parts = append(s.parts, strPiece{e: e, isExpr: true})
	}
	return s, nil
}

func (p *parser) importExpr(kw token) (expr, error) {
	t := p.next()
	if t.kind != tStr || len(t.parts) != 1 || t.parts[0].isExpr {
		return nil, errAt(t.pos, "import needs a constant string path")
	}
	if p.loader == nil {
		return nil, errAt(kw.pos, "import is not available here")
	}
	name, err := p.loader.Resolve(kw.pos.File, t.parts[0].lit)
	if err != nil {
		return nil, errAt(t.pos, "import %q: %v", t.parts[0].lit, err)
	}
	src, err := p.loader.Read(name)
	if err != nil {
		return nil, errAt(t.pos, "import %q: %v", t.parts[0].lit, err)
	}
	f, err := p.parseFile(name, src)
	if err != nil {
		return nil, err
	}
	return &importExpr{pos: kw.pos, file: f}, nil
}

// commaList parses the items of a bracketed list up to and including close:
// items separated by commas, a trailing comma allowed. item reports last when
// nothing may follow it (a record's "..").
func (p *parser) commaList(close string, item func() (last bool, err error)) error {
	for !p.isPunct(close) {
		last, err := item()
		if err != nil {
			return err
		}
		if last || !p.isPunct(",") {
			break
		}
		p.next()
	}
	_, err := p.expect(close)
	return err
}

func (p *parser) array(open token) (expr, error) {
	a := &arrayLit{pos: open.pos}
	err := p.commaList("]", func() (bool, error) {
		e, err := p.expr()
		a.elems = append(a.elems, e)
		return false, err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (p *parser) enumType(open token) (expr, error) {
	et := &enumType{pos: open.pos}
	err := p.commaList("|]", func() (bool, error) {
		t := p.next()
		if t.kind != tEnum {
			return false, errAt(t.pos, "expected an enum tag in [| … |], found %s", t)
		}
		et.tags = append(et.tags, t.text)
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return et, nil
}

func (p *parser) fieldName() (string, Pos, error) {
	t := p.next()
	switch {
	case t.kind == tIdent:
		return t.text, t.pos, nil
	case t.kind == tStr && len(t.parts) <= 1 && (len(t.parts) == 0 || !t.parts[0].isExpr):
		if len(t.parts) == 0 {
			return "", t.pos, nil
		}
		return t.parts[0].lit, t.pos, nil
	case t.kind == tStr:
		return "", t.pos, errAt(t.pos, "interpolated field names are %s", unsupported)
	}
	return "", t.pos, errAt(t.pos, "expected a field name, found %s", t)
}

func (p *parser) record(open token) (expr, error) {
	r := &recordLit{pos: open.pos}
	err := p.commaList("}", func() (bool, error) {
		if p.isPunct("..") {
			p.next()
			r.open = true
			return true, nil
		}
		f, err := p.field()
		r.fields = append(r.fields, f)
		return false, err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (p *parser) field() (fieldLit, error) {
	name, pos, err := p.fieldName()
	if err != nil {
		return fieldLit{}, err
	}
	f := fieldLit{pos: pos, path: []string{name}}
	for p.isPunct(".") {
		p.next()
		n, _, err := p.fieldName()
		if err != nil {
			return f, err
		}
		f.path = append(f.path, n)
	}
	// JSON style: "key": value
	if p.isPunct(":") {
		p.next()
		e, err := p.expr()
		if err != nil {
			return f, err
		}
		if !p.isPunct("=") {
			f.value = e
			return f, nil
		}
		f.contracts = append(f.contracts, e) // a type annotation `name : T = v`
	}
	for p.isPunct("|") {
		p.next()
		switch {
		case p.isKeyword("optional"):
			p.next()
			f.optional = true
		case p.isKeyword("default"):
			p.next()
			f.isDefault = true
		case p.isKeyword("force") || p.isKeyword("priority") || p.isKeyword("doc") || p.isKeyword("not_exported"):
			t := p.peek()
			return f, errAt(t.pos, "field annotation | %s is %s", t.text, unsupported)
		default:
			c, err := p.application()
			if err != nil {
				return f, err
			}
			f.contracts = append(f.contracts, c)
		}
	}
	if p.isPunct("=") {
		p.next()
		v, err := p.expr()
		if err != nil {
			return f, err
		}
		f.value = v
	} else if f.isDefault {
		return f, errAt(p.peek().pos, "| default needs a value (= …)")
	}
	return f, nil
}
