// Package spec reads .build-spec.ncl and BuildDirectives files: evaluated by
// the nickel CLI when it is available (authoritative), else by the built-in
// evaluator of internal/nickel, against the schemas embedded from schemas/.
package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/lian-build/action/internal/nickel"
	"github.com/lian-build/action/schemas"
)

// Evaluator evaluates Nickel programs to JSON-shaped documents.
type Evaluator struct {
	// Nickel is the nickel CLI to use; "" means: built-in evaluator.
	Nickel string
	Limits nickel.Limits
}

// DefaultEvaluator uses $LIAN_NICKEL, else `nickel` on PATH, else the built-in evaluator.
func DefaultEvaluator() Evaluator {
	if p := os.Getenv("LIAN_NICKEL"); p != "" {
		return Evaluator{Nickel: p}
	}
	if p, err := exec.LookPath("nickel"); err == nil {
		return Evaluator{Nickel: p}
	}
	return Evaluator{}
}

// Name says which evaluator is in use.
func (e Evaluator) Name() string {
	if e.Nickel != "" {
		return "nickel CLI (" + e.Nickel + ")"
	}
	return "built-in evaluator"
}

// contracted evaluates `(import FILE) | (import SCHEMA).CONTRACT` with imports
// confined to root. file must be absolute.
func (e Evaluator) contracted(ctx context.Context, root, file, schema, contract string) (*nickel.Document, error) {
	wrapper := func(schemaRef string) string {
		return fmt.Sprintf("(import %s) | (import %s).%s\n", strconv.Quote(file), strconv.Quote(schemaRef), contract)
	}
	if e.Nickel != "" {
		return e.viaCLI(ctx, root, wrapper(schema))
	}
	// The wrapper is virtual: most errors point into the user's file, where
	// the values are; one that points at the wrapper (a contract failing on
	// the whole document) is reported at the user's file, which exists.
	name := filepath.Join(root, ".lian-"+contract+".ncl")
	// The schema is named as the library's, so that a user's file of the
	// same name (say gateway.ncl) does not stand in for it.
	doc, err := nickel.Eval(ctx, name, []byte(wrapper("lib:"+schema)), nickel.Options{
		Loader: nickel.DirLoader{Root: root, Library: schemas.FS},
		Limits: e.Limits,
	})
	var ne *nickel.Error
	if errors.As(err, &ne) && ne.Pos.File == name {
		ne.Pos = nickel.Pos{File: file, Line: 1, Col: 1}
		if ne.Path != "" {
			ne.Msg += " (in the " + contract + " contract)"
		}
	}
	return doc, err
}

// viaCLI runs `nickel export --format json` with the embedded schemas on the import path.
func (e Evaluator) viaCLI(ctx context.Context, root, program string) (*nickel.Document, error) {
	tmp, err := os.MkdirTemp("", "lian-nickel-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	lib := filepath.Join(tmp, "schemas")
	if err := os.CopyFS(lib, schemas.FS); err != nil {
		return nil, err
	}
	main := filepath.Join(tmp, "main.ncl")
	if err := os.WriteFile(main, []byte(program), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, e.Nickel, "export", "--format", "json", "--import-path", lib, "--import-path", root, main)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("nickel export: %w\n%s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var v any
	dec := json.NewDecoder(&out)
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("nickel export: %w", err)
	}
	return &nickel.Document{Value: normalizeNumbers(v), Pos: map[string]nickel.Pos{}}, nil
}

func normalizeNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, x := range v {
			v[k] = normalizeNumbers(x)
		}
	case []any:
		for i, x := range v {
			v[i] = normalizeNumbers(x)
		}
	}
	return v
}

// decode turns a document into a struct through JSON.
func decode(doc *nickel.Document, out any) error {
	b, err := json.Marshal(doc.Value)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	return dec.Decode(out)
}

// FieldError is a value that passed the contract but not lian-build's own
// checks (e.g. an unknown tier), with its position when known.
type FieldError struct {
	Pos   nickel.Pos
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Pos.Line > 0 {
		return fmt.Sprintf("%s: %s: %v", e.Pos, e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Pos.File, e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(doc *nickel.Document, file, field string, err error) error {
	var p nickel.Pos
	ok := false
	if doc != nil {
		p, ok = doc.Pos[field]
	}
	if !ok {
		p = nickel.Pos{File: file}
	}
	return &FieldError{Pos: p, Field: field, Err: err}
}

// IsSpecError reports whether err is a problem in a spec or directives file.
func IsSpecError(err error) bool {
	var ne *nickel.Error
	var fe *FieldError
	var me *MissingError
	return errors.As(err, &ne) || errors.As(err, &fe) || errors.As(err, &me)
}

// MissingError is a file that does not exist.
type MissingError struct{ Path string }

func (e *MissingError) Error() string { return e.Path + ": no such file" }

// LoadContracted evaluates the file at path against contract of the
// embedded schema file (e.g. "gateway.ncl", "GatewayConfig"): the value,
// with the position of every field, or a file:line:col error.
func (l Loader) LoadContracted(ctx context.Context, path, schema, contract string) (*nickel.Document, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, &MissingError{Path: path}
	}
	return l.Eval.contracted(ctx, filepath.Dir(abs), abs, schema, contract)
}

// FieldAt is err about a field of doc, at the field's position.
func FieldAt(doc *nickel.Document, file, field string, err error) error {
	return fieldErr(doc, file, field, err)
}
