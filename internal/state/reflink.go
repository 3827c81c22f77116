package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// reflinkCloner clones a tree file by file with FICLONE (XFS with reflink,
// btrfs): every file shares its extents with the source, so the cost grows
// with the number of files, not their size. Owners, modes, times, extended
// attributes (overlayfs keeps its opaque markers there) and device nodes
// (its whiteouts) are kept.
type reflinkCloner struct{}

func (reflinkCloner) name() string { return "reflink copies (FICLONE)" }

func (reflinkCloner) create(path string) error { return os.Mkdir(path, 0o700) }

func (reflinkCloner) remove(path string) error { return os.RemoveAll(path) }

func (reflinkCloner) clone(src, dst string) error {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return cloneEntry(p, filepath.Join(dst, rel))
	})
	if err != nil {
		return fmt.Errorf("reflink clone of %s: %w", src, err)
	}
	// Directory times last: writing into a directory changes its mtime.
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return copyTimes(p, filepath.Join(dst, rel))
	})
}

func cloneEntry(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case unix.S_IFREG:
		if err := cloneFile(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	default: // devices (overlayfs whiteouts), fifos, sockets
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	}
	return copyMeta(src, dst, &st)
}

func cloneFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err != nil {
		out.Close()
		return fmt.Errorf("FICLONE %s: %w (the filesystem cannot share extents)", src, err)
	}
	return out.Close()
}

// copyMeta copies owner, mode, extended attributes and (but for
// directories, done last) times.
func copyMeta(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&07777); err != nil {
			return err
		}
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	return copyTimes(src, dst)
}

func copyTimes(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyXattrs(src, dst string) error {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(src, buf)
	if errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	if err != nil {
		return err
	}
	val := make([]byte, 64<<10)
	for _, name := range splitNull(buf[:n]) {
		vn, err := unix.Lgetxattr(src, name, val)
		if err != nil {
			return fmt.Errorf("xattr %s of %s: %w", name, src, err)
		}
		if err := unix.Lsetxattr(dst, name, val[:vn], 0); err != nil {
			return fmt.Errorf("xattr %s of %s: %w", name, dst, err)
		}
	}
	return nil
}

func splitNull(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}
