package buildkit

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/lian-build/action/internal/safefile"
)

// definition is what the dockerfile frontend reads before the context:
// the Dockerfile and the ignore file that applies to the context. It goes
// to the daemon inside the solve request (the frontend's "dockerfile"
// input), not through the session: loading the Dockerfile and the
// .dockerignore were two file syncs, about five round trips before any
// step, which across a WAN were most of a build that changes little.
type definition struct {
	name       string // the Dockerfile's base name, the frontend's filename
	dockerfile []byte
	ignore     []byte   // the ignore file's bytes (empty: none)
	excludes   []string // its patterns
}

// maxIgnoreFile bounds a .dockerignore.
const maxIgnoreFile = 1 << 20

// readDefinition reads o's Dockerfile and its ignore file.
func readDefinition(o Options) (definition, error) {
	df := dockerfilePath(o.ContextDir, o.Dockerfile)
	b, err := readDockerfile(df)
	if err != nil {
		return definition{}, err
	}
	d := definition{name: filepath.Base(df), dockerfile: b}
	d.ignore, d.excludes, err = readIgnoreFile(o, df)
	return d, err
}

// readIgnoreFile reads the ignore file of the Dockerfile df as the frontend
// would find it: <Dockerfile>.dockerignore beside it, else the context's
// .dockerignore; its bytes and patterns (none: no file, or a dangling
// link). A repository's ignore file must not lead outside its checkout.
func readIgnoreFile(o Options, df string) ([]byte, []string, error) {
	for _, p := range []string{df + ".dockerignore", filepath.Join(o.ContextDir, ".dockerignore")} {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var escape *safefile.EscapeError
		if o.Checkout != "" && errors.As(safefile.Confine(o.Checkout, p), &escape) {
			return nil, nil, inputErr("context", o.ContextDir, "%s leads outside the repository's checkout; refused", filepath.Base(p))
		}
		b, err := safefile.Read(p, maxIgnoreFile)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a dangling link: no ignore file, as the frontend reads it
		} else if err != nil {
			return nil, nil, inputErr("context", o.ContextDir, "%s: %v", filepath.Base(p), pathErr(err))
		}
		excludes, err := ignorefile.ReadAll(bytes.NewReader(b))
		if err != nil {
			return nil, nil, inputErr("context", o.ContextDir, "%s: %v", filepath.Base(p), err)
		}
		return b, excludes, nil
	}
	return nil, nil, nil
}

// state is the definition as the frontend's "dockerfile" input: the
// Dockerfile and <Dockerfile>.dockerignore, which the frontend then takes
// for the context's ignore file. It is never empty (a comment when there
// is none): the frontend would otherwise look for .dockerignore through
// the session.
func (d definition) state() llb.State {
	ignore := d.ignore
	if len(bytes.TrimSpace(ignore)) == 0 {
		ignore = []byte("# no .dockerignore\n")
	}
	return llb.Scratch().File(
		llb.Mkfile(d.name, 0o644, d.dockerfile).Mkfile(d.name+".dockerignore", 0o644, ignore),
		llb.WithCustomName("[internal] load build definition from "+d.name))
}

// pathErr drops an open error's path: the caller names the file in its
// own terms.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
