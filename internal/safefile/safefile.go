// Package safefile reads files that a user or a repository names: only
// regular files, never blocking on a FIFO or device, and never more than a
// bound, so that a hostile path cannot hang or exhaust a command or a service.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
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
