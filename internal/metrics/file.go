package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

// Workspaces implements Store: the workspaces with a recorded history.
func (s FileStore) Workspaces(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	var out []string
	for _, e := range entries {
		if ws, ok := strings.CutSuffix(strings.TrimPrefix(e.Name(), "ws."), ".json"); ok && strings.HasPrefix(e.Name(), "ws.") {
			out = append(out, ws)
		}
	}
	sort.Strings(out)
	return out, err
}
