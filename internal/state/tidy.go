package state

import (
	"context"
	"errors"

	"golang.org/x/sys/unix"
)

// Tidy does what commits of ns left for later: it removes the generations
// a newer one superseded and measures the current generation's size, once
// per generation. A build runs it beside its solve, off its critical path,
// and stops it (ctx) when it is done: what is left is done the next time.
// It returns that size (0: ns has no committed state).
func (s *Store) Tidy(ctx context.Context, ns string) (int64, error) {
	dir, err := s.existingNSDir(ns)
	var none *NoNamespaceError
	if errors.As(err, &none) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	if _, err := s.gcNamespace(ctx, dir); err != nil {
		return 0, err
	}
	m, _, err := s.measure(ctx, dir)
	return m.Bytes, err
}

// measure is ns's meta and current generation, its size measured when meta
// holds none for that generation, and then kept there. The walk holds no
// lock (a commit would wait for it): a generation superseded and set aside
// meanwhile is measured no more, its successor is.
func (s *Store) measure(ctx context.Context, dir string) (meta, int, error) {
	for try := 1; ; try++ {
		m, _ := readMeta(dir)
		gen, err := current(dir)
		if err != nil || gen == 0 {
			return meta{}, gen, err
		}
		if m.BytesGen == gen {
			return m, gen, nil
		}
		n, err := diskUsage(ctx, genDir(dir, gen))
		if cur, _ := current(dir); cur != gen && ctx.Err() == nil && try < 3 {
			continue
		}
		if err != nil {
			return meta{}, gen, err
		}
		return s.keepSize(ctx, dir, gen, n)
	}
}

// keepSize records n as generation gen's size, unless gen is no longer
// current; it returns the meta with the size.
func (s *Store) keepSize(ctx context.Context, dir string, gen int, n int64) (meta, int, error) {
	unlock, err := lock(ctx, dir, unix.LOCK_SH)
	if err != nil {
		return meta{}, gen, err
	}
	defer unlock()
	// Read again: a clone may have recorded its use meanwhile.
	m, _ := readMeta(dir)
	m.Bytes, m.BytesGen = n, gen
	if cur, err := current(dir); err != nil || cur != gen {
		return m, gen, err
	}
	return m, gen, writeMeta(dir, m)
}
