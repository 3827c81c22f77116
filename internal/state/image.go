package state

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// isImage reports whether the store's path names an image file.
func isImage(path string) bool { return strings.HasSuffix(path, ".img") }

// btrfsMagic is at this offset of a btrfs filesystem (its superblock).
const (
	btrfsMagic    = "_BHRfS_M"
	btrfsMagicOff = 0x10040
)

// isBtrfsImage refuses an existing image that is not a btrfs filesystem:
// nothing else is ever mounted.
func isBtrfsImage(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("not a regular file")
	}
	buf := make([]byte, len(btrfsMagic))
	if _, err := f.ReadAt(buf, btrfsMagicOff); err != nil || string(buf) != btrfsMagic {
		return fmt.Errorf("not a btrfs image (lian-build formats the images it creates; give a new PATH.img, or a directory on btrfs or XFS)")
	}
	return nil
}

// mountImage creates the image (sparse, btrfs) when it does not exist, and
// loop-mounts it (nosuid, nodev) at PATH.mnt unless it is mounted there
// already from this very file; a mount whose image was deleted or replaced
// is released first. It reports whether it mounted now.
func mountImage(ctx context.Context, path string, size int64) (string, bool, error) {
	mnt := path + ".mnt"
	if mounted(mnt) {
		if backedBy(mnt, path) {
			return mnt, false, nil
		}
		// A stale mount: its image is gone or another file now.
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			return "", false, fmt.Errorf("%s holds a mount of an image that is gone; unmounting it: %w", quote(mnt), err)
		}
	}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if size <= 0 {
			size = DefaultImageSize
		}
		if err := makeImage(ctx, path, size); err != nil {
			os.Remove(path)
			return "", false, err
		}
	}
	madeDir := false
	if _, err := os.Stat(mnt); os.IsNotExist(err) {
		if err := os.Mkdir(mnt, 0o700); err != nil {
			return "", false, err
		}
		madeDir = true
	}
	// mount(8) sets up the loop device (autoclear: unmounting frees it);
	// there is no Go client for that.
	if out, err := exec.CommandContext(ctx, "mount", "-t", "btrfs", "-o", "loop,nosuid,nodev", path, mnt).CombinedOutput(); err != nil {
		if madeDir {
			os.Remove(mnt)
		}
		return "", false, fmt.Errorf("mount %s: %v: %s", quote(path), err, strings.TrimSpace(string(out)))
	}
	return mnt, true, nil
}

// backedBy reports whether the mount at mnt is a loop device backed by the
// file at path as it is now (not deleted, not replaced).
func backedBy(mnt, path string) bool {
	src := mountSource(mnt)
	dev, ok := strings.CutPrefix(src, "/dev/")
	if !ok || !strings.HasPrefix(dev, "loop") {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/sys/block", dev, "loop", "backing_file"))
	if err != nil {
		return false
	}
	backing := strings.TrimSpace(string(b))
	if strings.HasSuffix(backing, " (deleted)") {
		return false
	}
	var a, c unix.Stat_t
	if unix.Stat(backing, &a) != nil || unix.Stat(path, &c) != nil {
		return false
	}
	return a.Dev == c.Dev && a.Ino == c.Ino
}

// mountSource is the source (device) of the mount at point, or "".
func mountSource(point string) string {
	source := ""
	eachMount(func(p, src string) bool {
		if p == point {
			source = src
			return true
		}
		return false
	})
	return source
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
	return eachMount(func(p, _ string) bool { return match(p) })
}

// eachMount calls fn with each mount point of this process's view and its
// source (a device), until fn returns true; it reports whether one did.
func eachMount(fn func(point, source string) bool) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		source := ""
		if _, after, ok := strings.Cut(line, " - "); ok {
			if rest := strings.Fields(after); len(rest) >= 2 {
				source = rest[1]
			}
		}
		if fn(fields[4], source) {
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
	// A runner's mounts inside the store, detached lazily when it was
	// destroyed, may hold it busy for a moment after the build.
	err := unix.Unmount(s.root, 0)
	for try := 0; errors.Is(err, unix.EBUSY) && try < 40; try++ {
		time.Sleep(50 * time.Millisecond)
		err = unix.Unmount(s.root, 0)
	}
	if err != nil {
		return fmt.Errorf("state store: unmount %s: %w", quote(s.root), err)
	}
	_ = os.Remove(s.root)
	return nil
}
