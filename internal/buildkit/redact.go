package buildkit

import (
	"bytes"
	"io"
	"sync"
)

// Redactor replaces secret values with *** in everything written through it.
// Text is held back until a newline so a value split across writes is still found.
type Redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte
	buf     []byte
}

// NewRedactor wraps w. Empty secrets and one-byte secrets are ignored (masking
// every "a" would destroy the log without protecting anything).
func NewRedactor(w io.Writer, secrets [][]byte) *Redactor {
	r := &Redactor{w: w}
	for _, s := range secrets {
		s = bytes.TrimRight(s, "\r\n")
		if len(s) > 1 {
			r.secrets = append(r.secrets, s)
			// A multi-line secret is also masked line by line.
			for _, l := range bytes.Split(s, []byte("\n")) {
				if l = bytes.TrimSpace(l); len(l) > 3 && !bytes.Equal(l, s) {
					r.secrets = append(r.secrets, l)
				}
			}
		}
	}
	return r
}

// Redact masks every secret in b.
func (r *Redactor) Redact(b []byte) []byte {
	for _, s := range r.secrets {
		b = bytes.ReplaceAll(b, s, []byte("***"))
	}
	return b
}

// RedactString masks every secret in s.
func (r *Redactor) RedactString(s string) string { return string(r.Redact([]byte(s))) }

func (r *Redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.secrets) == 0 {
		return r.w.Write(p)
	}
	r.buf = append(r.buf, p...)
	i := bytes.LastIndexAny(r.buf, "\n\r")
	if i < 0 && len(r.buf) < 64<<10 {
		return len(p), nil
	}
	cut := i + 1
	if i < 0 {
		cut = len(r.buf)
	}
	if _, err := r.w.Write(r.Redact(r.buf[:cut])); err != nil {
		return 0, err
	}
	r.buf = append(r.buf[:0], r.buf[cut:]...)
	return len(p), nil
}

// Flush writes what is held back.
func (r *Redactor) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) == 0 {
		return nil
	}
	_, err := r.w.Write(r.Redact(r.buf))
	r.buf = r.buf[:0]
	return err
}
