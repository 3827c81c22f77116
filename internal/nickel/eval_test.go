package nickel

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lian-build/action/schemas"
)

func evalString(t *testing.T, src string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	doc, err := Eval(context.Background(), filepath.Join(dir, "main.ncl"), []byte(src), Options{Loader: DirLoader{Root: dir, Library: schemas.FS}})
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(doc.Value)
	return string(b), nil
}

func TestEvalValid(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"numbers", `{ a = 1, b = -2.5, c = 1e3, d = 1_000 }`, `{"a":1,"b":-2.5,"c":1000,"d":1000}`},
		{"strings and escapes", `{ s = "a\"b\\c\nd" }`, `{"s":"a\"b\\c\nd"}`},
		{"interpolation", `let n = 3 in let w = "x" in { s = "%{w}-%{n}-%{'tag}-%{true}" }`, `{"s":"x-3-tag-true"}`},
		{"bool null enum array", `{ b = false, n = null, e = 'ok, q = '"with space", a = [1, "two", [3]] }`, `{"a":[1,"two",[3]],"b":false,"e":"ok","n":null,"q":"with space"}`},
		{"comments", "# c\n{ a = 1, # trailing\n  b = 2 }", `{"a":1,"b":2}`},
		{"nested paths", `{ a.b.c = 1, a.b.d = 2, a.e = 3 }`, `{"a":{"b":{"c":1,"d":2},"e":3}}`},
		{"quoted field names", `{ "with space" = 1, r = { "x-y" = 2 }."x-y" }`, `{"r":2,"with space":1}`},
		{"let and fun", `let add = fun a b => { x = a, y = b } in add 1 2`, `{"x":1,"y":2}`},
		{"partial application", `let f = fun a b => [a, b] in let g = f 1 in g 2`, `[1,2]`},
		{"field access", `let r = { a = { b = 5 } } in r.a.b`, `5`},
		{"recursive record", `{ a = 1, b = a, c = { d = b } }`, `{"a":1,"b":1,"c":{"d":1}}`},
		{"merge", `{ a = 1 } & { b = 2 }`, `{"a":1,"b":2}`},
		{"merge equal values", `{ a = 1, n.x = "s" } & { a = 1, n.x = "s" }`, `{"a":1,"n":{"x":"s"}}`},
		{"merge nested", `{ a = { x = 1 } } & { a = { y = 2 } }`, `{"a":{"x":1,"y":2}}`},
		{"default loses to value", `{ a | default = 1 } & { a = 2 }`, `{"a":2}`},
		{"default pushed into records", `{ a | default = { x = 1, y = 2 } } & { a = { y = 3 } }`, `{"a":{"x":1,"y":3}}`},
		{"default pushed down deeply", `{ a | default = { n = { x = 1 } } } & { a.n.y = 2 }`, `{"a":{"n":{"x":1,"y":2}}}`},
		{"late binding through merge", `{ a | default = 1, b = a } & { a = 5 }`, `{"a":5,"b":5}`},
		{"contract passes", `{ a | Number = 1, s | String = "x", b | Bool = true, d | Dyn = null }`, `{"a":1,"b":true,"d":null,"s":"x"}`},
		{"array contract", `{ a | Array Number = [1, 2] }`, `{"a":[1,2]}`},
		{"enum type", `{ e | [| 'a, 'b |] = 'b }`, `{"e":"b"}`},
		{"record contract fills defaults", `let C = { x | Number, y | Number | default = 7, z | optional } in { x = 1 } | C`, `{"x":1,"y":7}`},
		{"optional omitted", `{ a | optional, b = 1 }`, `{"b":1}`},
		{"open contract", `let C = { x | Number, .. } in { x = 1, extra = 2 } | C`, `{"extra":2,"x":1}`},
		{"unused field is lazy", `let r = { good = 1, bad = r.nope } in r.good`, `1`},
		{"unused unsupported is lazy", `let r = { good = 1, bad = std.string.length "x" } in r.good`, `1`},
		{"json document", `{"a": 1, "b": [true, {"c": null}], "d": "e"}`, `{"a":1,"b":[true,{"c":null}],"d":"e"}`},
		{"type annotation", `{ a : Number = 1 }`, `{"a":1}`},
		{"library import", `(import "build_spec.ncl").Language`, ``},
		{"ci directives", `let D = import "defaults/build_directives.ncl" in
D.make_ci_build { workspace = "lian-build", artifact = { image = "registry/lian-build:abc123" } }`,
			`{"artifact":{"image":"registry/lian-build:abc123"},"cache_policy":{"actor":"ci","disposition":"export","extra_imports":[]},"compute_provider":"local","registry_provider":"generic","workspace":"lian-build"}`},
		{"session directives", `let D = import "defaults/build_directives.ncl" in
D.make_session_build { workspace = "lian-build", actor_id = "jpl", disposition = 'discard }`,
			`{"cache_policy":{"actor":"human","actor_id":"jpl","disposition":"discard","extra_imports":[]},"compute_provider":"local","registry_provider":"generic","workspace":"lian-build"}`},
		{"ci directives with overrides", `let D = import "defaults/build_directives.ncl" in
D.make_ci_build { workspace = "w", artifact.image = "r/w:1", compute_provider = 'hcloud, runner_override = "cax31" }`,
			`{"artifact":{"image":"r/w:1"},"cache_policy":{"actor":"ci","disposition":"export","extra_imports":[]},"compute_provider":"hcloud","registry_provider":"generic","runner_override":"cax31","workspace":"w"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := evalString(t, tt.src)
			if tt.want == "" {
				var ne *Error
				if !errors.As(err, &ne) || !strings.Contains(err.Error(), "cannot export a contract") {
					t.Fatalf("want an export error for a contract, got %v / %s", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"wrong type", `{ a | String = 1 }`, `main.ncl:1:16: a: expected String, got Number`},
		{"nested contract", `let D = import "defaults/build_directives.ncl" in
D.make_ci_build { workspace = "x", artifact = { image = 5 } }`, `main.ncl:2:57: artifact.image: expected String, got Number`},
		{"typo suggests", `let D = import "defaults/build_directives.ncl" in
D.make_ci_build { workspace = "x", artifcat = { image = "a" } }`, `main.ncl:2:36: artifcat: unknown field (did you mean "artifact"?)`},
		{"enum typo", `{ e | [| 'export, 'discard |] = 'discrad }`, `'discrad is not one of 'export, 'discard (did you mean "discard"?)`},
		{"missing required", `let C = { x | Number, y | String } in { x = 1 } | C`, `y: missing required field`},
		{"conflicting merge", `{ a = 1 } & { a = 2 }`, `main.ncl:1:19: a: conflicting values 1 and 2`},
		{"merge functions", `{ f = fun x => x } & { f = fun y => y }`, `f: cannot merge a function`},
		{"infinite recursion", `{ a = b, b = a }`, `infinite recursion`},
		{"unbound", `{ a = nope }`, `main.ncl:1:7: a: unbound identifier "nope"`},
		{"no such field", `{ abc = 1 }.abd`, `no field "abd" (did you mean "abc"?)`},
		{"declared only", `{ a | Number }.a`, `a: missing definition`},
		{"export missing", `{ a | Number }`, `a: missing definition`},
		{"operator", `{ a = 1 + 2 }`, `main.ncl:1:9: operator + is not supported without the nickel CLI`},
		{"string concat", `{ a = "x" ++ "y" }`, `operator ++ is not supported without the nickel CLI`},
		{"equality", `{ a = 1 == 1 }`, `operator == is not supported`},
		{"if", `{ a = if true then 1 else 2 }`, `"if" is not supported without the nickel CLI`},
		{"match", `match { 'a => 1 }`, `"match" is not supported`},
		{"std", `{ a = std.string.length "x" }`, `a: std is not supported without the nickel CLI`},
		{"let rec", `let rec f = 1 in f`, `let rec is not supported`},
		{"force", `{ a | force = 1 }`, `| force is not supported`},
		{"multiline string", `m%"x"%`, `multiline strings`},
		{"custom contract", `let C = fun l v => v in { a | C = 1 }`, `custom contracts (functions) are not supported`},
		{"unterminated string", `{ a = "x }`, `main.ncl:1:7: unterminated string`},
		{"unterminated record", `{ a = 1`, `main.ncl:1:8: expected "}", found end of file`},
		{"trailing garbage", `{ a = 1 } }`, `unexpected "}" after the end of the expression`},
		{"apply non-function", `{ a = 1 2 }`, `cannot apply Number: it is not a function`},
		{"access on number", `(1).x`, `cannot access field "x" of Number`},
		{"export function", `{ f = fun x => x }`, `f: cannot export a Function`},
		{"import missing", `import "nope.ncl"`, `import "nope.ncl": no such file`},
		{"import outside root", `import "../../../etc/hostname"`, `import outside the context root`}, // arch:hostile-paths
		{"interpolate record", `"%{ {a = 1} }"`, `cannot interpolate Record`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := evalString(t, tt.src)
			var ne *Error
			if !errors.As(err, &ne) {
				t.Fatalf("err = %v (%T), want *nickel.Error", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant %q", err, tt.want)
			}
			if ne.Pos.Line == 0 {
				t.Errorf("error without a position: %v", err)
			}
		})
	}
}

func TestImports(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("lib/values.ncl", `{ tier = "cax21", more = import "more.ncl" }`)
	write("lib/more.ncl", `{ n = 2 }`)
	write("cycle-a.ncl", `{ b = import "cycle-b.ncl" }`)
	write("cycle-b.ncl", `{ a = import "cycle-a.ncl" }`)
	eval := func(src string) (string, error) {
		doc, err := Eval(context.Background(), filepath.Join(dir, "main.ncl"), []byte(src), Options{Loader: DirLoader{Root: dir}})
		if err != nil {
			return "", err
		}
		b, _ := json.Marshal(doc.Value)
		return string(b), nil
	}
	got, err := eval(`let v = import "lib/values.ncl" in { t = v.tier, n = v.more.n }`)
	if err != nil || got != `{"n":2,"t":"cax21"}` {
		t.Fatalf("relative imports: %s %v", got, err)
	}
	if _, err := eval(`import "cycle-a.ncl"`); err == nil || !strings.Contains(err.Error(), "import cycle") {
		t.Fatalf("cycle: %v", err)
	}
	outside := filepath.Join(filepath.Dir(dir), "outside.ncl")
	if err := os.WriteFile(outside, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(outside)
	if _, err := eval(`import "../outside.ncl"`); err == nil || !strings.Contains(err.Error(), "outside the context root") {
		t.Fatalf("outside: %v", err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link.ncl")); err != nil {
		t.Fatal(err)
	}
	if _, err := eval(`import "link.ncl"`); err == nil || !strings.Contains(err.Error(), "outside the context root") {
		t.Fatalf("symlink out of the root: %v", err)
	}
}

func TestLimits(t *testing.T) {
	// A function applied to itself never ends; the step and depth limits end it.
	src := `let f = fun x => x x in f f`
	_, err := Eval(context.Background(), "loop.ncl", []byte(src), Options{Limits: Limits{MaxSteps: 10000, MaxDepth: 100}})
	if err == nil || !(strings.Contains(err.Error(), "deeper than 100") || strings.Contains(err.Error(), "exceeds 10000 steps")) {
		t.Fatalf("err = %v", err)
	}
	deep := strings.Repeat("[", 1000) + strings.Repeat("]", 1000)
	if _, err := Eval(context.Background(), "deep.ncl", []byte(deep), Options{}); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Fatalf("deep: %v", err)
	}
}

func TestLibraryStaysInLibrary(t *testing.T) {
	lib := fstest.MapFS{"a.ncl": {Data: []byte(`import "../../etc/passwd"`)}}
	_, err := Eval(context.Background(), "/tmp/x/main.ncl", []byte(`import "a.ncl"`), Options{Loader: DirLoader{Root: "/tmp/x", Library: lib}})
	if err == nil || !strings.Contains(err.Error(), "outside the schema library") {
		t.Fatalf("err = %v", err)
	}
}
