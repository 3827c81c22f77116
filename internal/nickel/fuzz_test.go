package nickel

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lian-build/action/schemas"
)

// FuzzEval: no panic, no hang, and every error carries a position.
func FuzzEval(f *testing.F) {
	for _, s := range []string{
		`{ a = 1, b.c = "x%{a}" }`, `let f = fun x => x in f 1`, `{ a | Number | default = 1 } & { a = 2 }`,
		`[| 'a, 'b |]`, `{"json": [1, 2, {"x": null}]}`, `let D = import "defaults/build_directives.ncl" in D.make_ci_build { workspace = "w", artifact.image = "i" }`,
		`{ a = b, b = a }`, `"%{ "%{1}" }"`, bomb(40), `{ x | { y | String } = { y = "s" } }`, `# c` + "\n" + `'tag`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		done := make(chan struct{})
		var err error
		go func() {
			defer close(done)
			_, err = Eval(context.Background(), "fuzz.ncl", []byte(src), Options{Loader: DirLoader{Root: t.TempDir(), Library: schemas.FS}, Limits: Limits{MaxSteps: 20000, MaxDepth: 200, MaxBytes: 1 << 20}})
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("evaluation hangs on %q", src)
		}
		if err == nil {
			return
		}
		var ne *Error
		if !errors.As(err, &ne) || ne.Pos.Line == 0 || ne.Pos.File == "" {
			t.Fatalf("error without a position on %q: %v", src, err)
		}
	})
}
