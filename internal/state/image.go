package state

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

func isImage(path string) bool {
	if strings.HasSuffix(path, ".img") {
		return true
	}
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// mountImage creates the image (sparse, btrfs) when it does not exist, and
// loop-mounts it at PATH.mnt unless it is mounted there already.
func mountImage(ctx context.Context, path string, size int64) (string, error) {
	mnt := path + ".mnt"
	if mounted(mnt) {
		return mnt, nil
	}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if size <= 0 {
			size = DefaultImageSize
		}
		if err := makeImage(ctx, path, size); err != nil {
			os.Remove(path)
			return "", err
		}
	}
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return "", err
	}
	// mount(8) sets up the loop device; there is no Go client for that.
	if out, err := exec.CommandContext(ctx, "mount", "-o", "loop", path, mnt).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mount %s: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	return mnt, nil
}

func makeImage(ctx context.Context, path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "mkfs.btrfs", "-q", path).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.btrfs (apt install btrfs-progs): %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mounted reports whether dir is a mount point.
func mounted(dir string) bool { return anyMount(func(p string) bool { return p == dir }) }

// busy reports whether a runner still uses dir: something is mounted below
// it (a running step's snapshots), or a process has a file below it open
// (buildkitd keeps its databases open while it runs).
func busy(dir string) bool {
	prefix := filepath.Clean(dir) + "/"
	if anyMount(func(p string) bool { return strings.HasPrefix(p, prefix) }) {
		return true
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.HasPrefix(target, prefix) {
			return true
		}
	}
	return false
}

func anyMount(match func(point string) bool) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && match(fields[4]) {
			return true
		}
	}
	return false
}

// Unmount unmounts the store's image, when the store is one (a store on a
// directory has nothing to unmount).
func (s *Store) Unmount() error {
	if !strings.HasSuffix(s.root, ".mnt") || !mounted(s.root) {
		return nil
	}
	if err := unix.Unmount(s.root, 0); err != nil {
		return fmt.Errorf("state store: unmount %s: %w", s.root, err)
	}
	return nil
}
