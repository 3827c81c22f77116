package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// FileStore keeps one JSON file per workspace in Dir, updated under a file lock.
type FileStore struct{ Dir string }

// DefaultDir is the file store's directory unless configured.
const DefaultDir = "/var/lib/lian-build/metrics"

func (s FileStore) path(ws string) string { return filepath.Join(s.Dir, keyOf(ws)+".json") }

// Get implements Store.
func (s FileStore) Get(ctx context.Context, ws string) (History, error) {
	h := History{Workspace: ws}
	b, err := os.ReadFile(s.path(ws))
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%s: %w", s.path(ws), err)
	}
	return h, ctx.Err()
}

// Update implements Store.
func (s FileStore) Update(ctx context.Context, ws string, fn func(*History)) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(s.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	h, err := s.Get(ctx, ws)
	if err != nil {
		return err
	}
	fn(&h)
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path(ws) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.path(ws))
}
