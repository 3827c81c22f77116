package nickel

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/lian-build/action/internal/safefile"
)

// DirLoader reads imports from disk, confined to Root, falling back to a
// library (the embedded schemas) for paths that are not on disk — the way
// nickel's --import-path works.
type DirLoader struct {
	Root    string // imports may not leave this directory
	Library fs.FS  // optional: "defaults/build_directives.ncl" etc.
}

const libPrefix = "lib:"

// Resolve implements Loader.
func (l DirLoader) Resolve(from, p string) (string, error) {
	if strings.HasPrefix(from, libPrefix) {
		// Inside the library, imports stay inside the library.
		name := path.Clean(path.Join(path.Dir(strings.TrimPrefix(from, libPrefix)), p))
		if strings.HasPrefix(name, "../") || name == ".." {
			return "", errors.New("import outside the schema library")
		}
		return libPrefix + name, nil
	}
	// "lib:NAME" names the library explicitly: a user's file of the same
	// name never shadows a schema.
	if name, ok := strings.CutPrefix(p, libPrefix); ok && l.Library != nil {
		name = path.Clean(name)
		if _, err := fs.Stat(l.Library, name); err != nil || strings.HasPrefix(name, "../") {
			return "", errors.New("no such schema " + name)
		}
		return libPrefix + name, nil
	}
	var cand string
	if filepath.IsAbs(p) {
		cand = filepath.Clean(p)
	} else {
		cand = filepath.Join(filepath.Dir(from), p)
	}
	root, err := filepath.Abs(l.Root)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(cand)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err == nil {
		// Resolve symlinks: a link may not lead out of the root either.
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return "", err
		}
		realRoot, err := filepath.EvalSymlinks(root)
		if err != nil {
			return "", err
		}
		if !safefile.Within(realRoot, real) {
			return "", errors.New("import outside the context root " + root)
		}
		return abs, nil
	}
	if l.Library != nil && !filepath.IsAbs(p) {
		name := path.Clean(filepath.ToSlash(p))
		if _, err := fs.Stat(l.Library, name); err == nil {
			return libPrefix + name, nil
		}
	}
	if !safefile.Within(root, abs) {
		return "", errors.New("import outside the context root " + root)
	}
	return "", errors.New("no such file")
}

// Read implements Loader.
func (l DirLoader) Read(name string) ([]byte, error) {
	if lib, ok := strings.CutPrefix(name, libPrefix); ok {
		return fs.ReadFile(l.Library, lib)
	}
	return safefile.Read(name, safefile.MaxSpec)
}
