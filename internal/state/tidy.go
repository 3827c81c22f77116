package state

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Tidy does what commits of ns left for later: it removes the generations
// a newer one superseded and measures the current generation's size, once
// per generation. A build runs it beside its solve, off its critical path.
// It returns that size (0: ns has no committed state).
func (s *Store) Tidy(ctx context.Context, ns string) (int64, error) {
	if err := ValidNamespace(ns); err != nil {
		return 0, err
	}
	dir := filepath.Join(s.root, "ns", url.PathEscape(ns))
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err := ownDir(dir); err != nil {
		return 0, err
	}
	if _, err := s.gcNamespace(ctx, dir); err != nil {
		return 0, err
	}
	n, _, err := s.measure(ctx, dir)
	return n, err
}

// measure is the current generation's size and number, measured when meta
// holds no size for it, and then kept there. The shared lock keeps the
// generation from being removed while it is walked.
func (s *Store) measure(ctx context.Context, dir string) (int64, int, error) {
	unlock, err := lock(ctx, dir, unix.LOCK_SH)
	if err != nil {
		return 0, 0, err
	}
	defer unlock()
	gen, err := current(dir)
	if err != nil || gen == 0 {
		return 0, gen, err
	}
	if m, _ := readMeta(dir); m.BytesGen == gen {
		return m.Bytes, gen, nil
	}
	n, err := diskUsage(genDir(dir, gen))
	if err != nil {
		return 0, gen, err
	}
	// Read again: a clone may have recorded its use meanwhile.
	m, _ := readMeta(dir)
	m.Bytes, m.BytesGen = n, gen
	return n, gen, writeMeta(dir, m)
}
