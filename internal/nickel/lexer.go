// Package nickel evaluates the subset of the Nickel configuration language
// that lian-build's schemas and specs use: records (recursive, with nested
// field paths and piecewise definitions), strings with %{…} interpolation,
// numbers, bools, null, arrays, enum tags and enum types, # comments,
// let … in, fun, application, field access, relative import, merge &,
// contracts (| C), | optional, | default = …, and JSON documents.
//
// Everything else is a clear error ("not supported without the nickel CLI"),
// never a silent wrong value. When the nickel CLI is available it is
// authoritative; see Eval in package spec.
package nickel

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Pos is a position in a source file (1-based line and column).
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is an evaluation or syntax error with its position and, when known,
// the path of the record field being evaluated.
type Error struct {
	Pos  Pos
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("%s: %s: %s", e.Pos, e.Path, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
}

func errAt(p Pos, format string, a ...any) *Error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, a...)}
}

const unsupported = "not supported without the nickel CLI"

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tNum
	tStr // a string literal, split into parts
	tEnum
	tPunct
)

type strPart struct {
	lit    string
	interp []token // tokens of an interpolated expression
	isExpr bool
	pos    Pos
}

type token struct {
	kind  tokKind
	text  string // identifier, punctuation, number text, enum tag
	parts []strPart
	pos   Pos
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tStr:
		return "string"
	case tEnum:
		return "'" + t.text
	}
	return fmt.Sprintf("%q", t.text)
}

type lexer struct {
	file      string
	src       string
	off       int
	line, col int
}

func lex(file, src string) ([]token, error) {
	l := &lexer{file: file, src: src, line: 1, col: 1}
	return l.tokens(false)
}

func (l *lexer) pos() Pos { return Pos{File: l.file, Line: l.line, Col: l.col} }

func (l *lexer) peek(n int) byte {
	if l.off+n < len(l.src) {
		return l.src[l.off+n]
	}
	return 0
}

func (l *lexer) rune() rune {
	r, _ := utf8.DecodeRuneInString(l.src[l.off:])
	return r
}

func (l *lexer) advance() rune {
	r, size := utf8.DecodeRuneInString(l.src[l.off:])
	l.off += size
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return r
}

var puncts = []string{"[|", "|]", "=>", "..", "{", "}", "[", "]", "(", ")", ",", "=", ".", "|", "&", ":", ";"}

// Operators of full Nickel that this subset refuses by name.
var unsupportedOps = []string{"++", "==", "!=", "<=", ">=", "&&", "||", "|>", "->", "@", "+", "-", "*", "/", "%", "<", ">", "!", "?"}

// tokens lexes until EOF, or (inInterp) until the '}' closing an interpolation.
func (l *lexer) tokens(inInterp bool) ([]token, error) {
	var out []token
	depth := 0
	for {
		l.skipSpace()
		p := l.pos()
		if l.off >= len(l.src) {
			if inInterp {
				return nil, errAt(p, "unterminated %%{ … } in string")
			}
			return append(out, token{kind: tEOF, pos: p}), nil
		}
		c := l.src[l.off]
		switch {
		case c == '"':
			t, err := l.str(p)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		case c == 'm' && strings.HasPrefix(l.src[l.off:], `m%"`):
			return nil, errAt(p, "multiline strings (m%%\"…\"%%) are %s", unsupported)
		case c == '\'':
			t, err := l.enumTag(p)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		case isIdentStart(l.rune()):
			id := l.ident()
			if id == "" {
				return nil, errAt(p, "unexpected character %q", l.rune())
			}
			out = append(out, token{kind: tIdent, text: id, pos: p})
		case c >= '0' && c <= '9' || (c == '-' && l.peek(1) >= '0' && l.peek(1) <= '9' && !operandBefore(out)):
			out = append(out, token{kind: tNum, text: l.number(), pos: p})
		default:
			if inInterp && c == '{' {
				depth++
			}
			if inInterp && c == '}' {
				if depth == 0 {
					l.advance()
					return append(out, token{kind: tEOF, pos: p}), nil
				}
				depth--
			}
			sup, unsup := longestPrefix(l.src[l.off:], puncts), longestPrefix(l.src[l.off:], unsupportedOps)
			if len(unsup) > len(sup) {
				return nil, errAt(p, "operator %s is %s", unsup, unsupported)
			}
			matched := sup != ""
			if matched {
				for range sup {
					l.advance()
				}
				out = append(out, token{kind: tPunct, text: sup, pos: p})
			}
			if !matched {
				r, _ := utf8.DecodeRuneInString(l.src[l.off:])
				return nil, errAt(p, "unexpected character %q", r)
			}
		}
	}
}

// skipSpace skips white space and comments.
func (l *lexer) skipSpace() {
	for l.off < len(l.src) {
		c := l.src[l.off]
		if c == '#' {
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance()
			}
			continue
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return
		}
		l.advance()
	}
}

// enumTag lexes 'tag or '"quoted tag" at p.
func (l *lexer) enumTag(p Pos) (token, error) {
	l.advance()
	if l.off < len(l.src) && l.src[l.off] == '"' {
		t, err := l.str(p)
		if err != nil {
			return token{}, err
		}
		if len(t.parts) > 1 || (len(t.parts) == 1 && t.parts[0].isExpr) {
			return token{}, errAt(p, "an enum tag cannot be interpolated")
		}
		text := ""
		if len(t.parts) == 1 {
			text = t.parts[0].lit
		}
		return token{kind: tEnum, text: text, pos: p}, nil
	}
	id := l.ident()
	if id == "" {
		return token{}, errAt(p, "expected an enum tag after '")
	}
	return token{kind: tEnum, text: id, pos: p}, nil
}

func longestPrefix(s string, set []string) string {
	best := ""
	for _, x := range set {
		if len(x) > len(best) && strings.HasPrefix(s, x) {
			best = x
		}
	}
	return best
}

func operandBefore(toks []token) bool {
	if len(toks) == 0 {
		return false
	}
	t := toks[len(toks)-1]
	return t.kind == tIdent || t.kind == tNum || t.kind == tStr || (t.kind == tPunct && (t.text == ")" || t.text == "]" || t.text == "}"))
}

func isIdentStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }

func (l *lexer) ident() string {
	start := l.off
	for l.off < len(l.src) {
		r, _ := utf8.DecodeRuneInString(l.src[l.off:])
		if r == '_' || r == '\'' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			// a trailing "-" that starts an operator or number is not part of the name
			if r == '-' && (l.off+1 >= len(l.src) || !(isIdentStart(rune(l.src[l.off+1])) || unicode.IsDigit(rune(l.src[l.off+1])))) {
				break
			}
			l.advance()
			continue
		}
		break
	}
	return l.src[start:l.off]
}

func (l *lexer) number() string {
	start := l.off
	if l.src[l.off] == '-' {
		l.advance()
	}
	for l.off < len(l.src) {
		c := l.src[l.off]
		if c >= '0' && c <= '9' || c == '.' && l.peek(1) >= '0' && l.peek(1) <= '9' || c == 'e' || c == 'E' || ((c == '+' || c == '-') && (l.src[l.off-1] == 'e' || l.src[l.off-1] == 'E')) || c == '_' {
			l.advance()
			continue
		}
		break
	}
	return strings.ReplaceAll(l.src[start:l.off], "_", "")
}

func (l *lexer) str(p Pos) (token, error) {
	l.advance() // opening quote
	t := token{kind: tStr, pos: p}
	var b strings.Builder
	litPos := l.pos()
	flush := func() {
		if b.Len() > 0 {
			t.parts = append(t.parts, strPart{lit: b.String(), pos: litPos})
			b.Reset()
		}
	}
	for {
		if l.off >= len(l.src) {
			return t, errAt(p, "unterminated string")
		}
		c := l.src[l.off]
		switch {
		case c == '"':
			l.advance()
			flush()
			return t, nil
		case c == '\n':
			return t, errAt(l.pos(), "newline in a string (use \\n)")
		case c == '\\':
			l.advance()
			if l.off >= len(l.src) {
				return t, errAt(p, "unterminated string")
			}
			e := l.advance()
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '"', '\\', '%', '/':
				b.WriteRune(e)
			case 'u':
				return t, errAt(l.pos(), "\\u escapes are %s", unsupported)
			default:
				return t, errAt(l.pos(), "unknown escape \\%c", e)
			}
		case c == '%' && l.peek(1) == '{':
			flush()
			ip := l.pos()
			l.advance()
			l.advance()
			inner, err := l.tokens(true)
			if err != nil {
				return t, err
			}
			t.parts = append(t.parts, strPart{interp: inner, isExpr: true, pos: ip})
			litPos = l.pos()
		default:
			b.WriteRune(l.advance())
		}
	}
}
