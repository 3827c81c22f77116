// Package safefile reads files that a user or a repository names: only
// regular files, never blocking on a FIFO or device, and never more than a
// bound, so that a hostile path cannot hang or exhaust a command or a service.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// MaxSpec bounds Nickel specs and directives; MaxSecret bounds secret and
// key files (an SSH or App key is a few KB).
const (
	MaxSpec   = 1 << 20
	MaxSecret = 1 << 20
)

// ErrNotRegular is returned for a FIFO, device, socket or directory.
var ErrNotRegular = errors.New("not a regular file")

// TooLargeError is a file over the bound.
type TooLargeError struct {
	Path string
	Max  int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("larger than %d bytes", e.Max)
}

// Errors of Read name no path (callers name the file in their own terms),
// except those of open(2), which are *os.PathError.

// Read returns the contents of the regular file at path, at most max bytes.
// It opens with O_NONBLOCK so that a FIFO cannot block the open itself, then
// checks the type on the open descriptor (no race with a rename).
func Read(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w (%s)", ErrNotRegular, kind(st.Mode()))
	}
	if st.Size() > max {
		return nil, &TooLargeError{Path: path, Max: max}
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, &TooLargeError{Path: path, Max: max}
	}
	return b, nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

// EscapeError is a path that leaves the directory it must stay in: absolute,
// climbing out with "..", or through a symbolic link that points outside.
// It names neither the target nor anything read from it.
type EscapeError struct {
	Path string // as given
	Root string
}

func (e *EscapeError) Error() string {
	return fmt.Sprintf("%q leads outside the checkout (absolute paths, .. and symbolic links that point outside are refused)", e.Path)
}

// Beneath resolves p (relative to dir, itself below root; absolute p is
// refused) the way the kernel would, symbolic links included, and returns
// the path only when every step stays below root. A path that does not
// exist yet is resolved as far as it exists.
func Beneath(root, dir, p string) (string, error) {
	if filepath.IsAbs(p) {
		return "", &EscapeError{Path: p, Root: root}
	}
	full, err := filepath.Abs(filepath.Join(dir, p))
	if err != nil {
		return "", err
	}
	return full, confine(root, full, p)
}

// Confine checks that path (absolute or relative to the working directory)
// resolves, symbolic links included, below root.
func Confine(root, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	return confine(root, abs, path)
}

// confine checks that the absolute path abs resolves below root; an
// escape names the path as the user gave it (shown).
func confine(root, abs, shown string) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	realRoot, _ = filepath.Abs(realRoot)
	resolved, err := resolveExisting(abs)
	if err != nil {
		return err
	}
	if !Within(realRoot, resolved) {
		return &EscapeError{Path: shown, Root: root}
	}
	return nil
}

// resolveExisting evaluates the symbolic links of the longest existing
// prefix of the absolute path p and appends the rest, cleaned.
func resolveExisting(p string) (string, error) {
	rest := ""
	cur := filepath.Clean(p)
	for {
		r, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return filepath.Join(cur, rest), nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// Within reports whether p is root or below it (both clean and absolute).
func Within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
