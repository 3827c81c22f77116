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
// per generation. A build runs it beside its solve, off its critical path,
// and stops it (ctx) when it is done: what is left is done the next time.
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
// holds no size for it, and then kept there. The walk holds no lock (a
// commit would wait for it): a generation superseded and set aside
// meanwhile is measured no more, its successor is.
func (s *Store) measure(ctx context.Context, dir string) (int64, int, error) {
	for try := 1; ; try++ {
		gen, err := current(dir)
		if err != nil || gen == 0 {
			return 0, gen, err
		}
		if m, _ := readMeta(dir); m.BytesGen == gen {
			return m.Bytes, gen, nil
		}
		n, err := diskUsage(ctx, genDir(dir, gen))
		if cur, _ := current(dir); cur != gen && ctx.Err() == nil && try < 3 {
			continue
		}
		if err != nil {
			return 0, gen, err
		}
		return n, gen, s.keepSize(ctx, dir, gen, n)
	}
}

// keepSize records n as generation gen's size, unless gen is no longer
// current.
func (s *Store) keepSize(ctx context.Context, dir string, gen int, n int64) error {
	unlock, err := lock(ctx, dir, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	if cur, err := current(dir); err != nil || cur != gen {
		return err
	}
	// Read again: a clone may have recorded its use meanwhile.
	m, _ := readMeta(dir)
	m.Bytes, m.BytesGen = n, gen
	return writeMeta(dir, m)
}
