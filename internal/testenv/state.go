package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lian-build/action/internal/state"
)

// StateStore is a state store for a test on a loop image of its own:
// "btrfs" (the store formats and mounts the image itself) or "xfs" (an XFS
// image with reflink, mounted here, given to the store as a directory).
// Both are unmounted when the test ends. opts.Path is set here.
func StateStore(t testing.TB, fs string, opts state.Options) *state.Store {
	t.Helper()
	s, _ := stateStore(t, fs, opts)
	return s
}

// StateStoreImage is StateStore on a btrfs image, and the image's path.
func StateStoreImage(t testing.TB, opts state.Options) (*state.Store, string) {
	t.Helper()
	return stateStore(t, "btrfs", opts)
}

func stateStore(t testing.TB, fs string, opts state.Options) (*state.Store, string) {
	t.Helper()
	tool := map[string]string{"btrfs": "mkfs.btrfs", "xfs": "mkfs.xfs"}[fs]
	if _, err := exec.LookPath(tool); err != nil || os.Geteuid() != 0 {
		missingPrereq(t, "root and "+tool+" (apt install btrfs-progs xfsprogs)")
	}
	dir := t.TempDir()
	opts.Path = filepath.Join(dir, "store.img")
	if opts.ImageSize == 0 {
		opts.ImageSize = 1 << 30
	}
	if fs == "xfs" {
		opts.Path = Disk(t, "xfs", 1<<30)
	}
	s, err := state.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return s, opts.Path
}
