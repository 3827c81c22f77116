// Package state keeps committed BuildKit state per cache namespace, so that
// a fresh runner starts on a warm disk: each build gets a copy-on-write
// clone of the state its actor may read (a btrfs snapshot, or a reflink
// copy on XFS), runs a new buildkitd on it, and only a clean success commits
// the clone, atomically, as the namespace's next generation. Failure,
// cancel, OOM and a discard disposition throw the clone away.
//
// Layout under the store's root:
//
//	ns/<namespace, path-escaped>/gen-<N>   committed generations
//	ns/<…>/current                           symlink to the committed one
//	ns/<…>/meta.json                         size, last use, last writer
//	ns/<…>/lock                              flock: clones share, commits exclude
//	work/<lease>                             clones in use, work/<lease>.owner beside
package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Options configure a store.
type Options struct {
	// Path is a directory on btrfs or XFS (with reflink), or an image file
	// (PATH ending in .img) that the store creates sparse, formats with
	// btrfs and loop-mounts at PATH.mnt.
	Path string
	// ImageSize is the size of a new image (default 20 GiB, sparse).
	ImageSize int64
	// MaxBytes bounds the committed states together: beyond it the least
	// recently used namespaces are evicted (0: no bound).
	MaxBytes int64
	// Existing opens only a store that exists (state ls, rm, gc).
	Existing bool
}

// DefaultImageSize is the size of a new store image.
const DefaultImageSize = 20 << 30

// Store is an open state store.
type Store struct {
	// image is the image file of a store on one ("": a directory), and
	// mountedNow whether this Open mounted it.
	image      string
	mountedNow bool
	root       string
	how        string // what the root is, for people
	cloner     cloner
	opts       Options
}

// cloner makes, clones and removes state directories on one filesystem.
type cloner interface {
	name() string
	create(path string) error
	clone(src, dst string) error
	remove(path string) error
}

// Filesystem magic numbers (statfs f_type).
const (
	magicBtrfs = 0x9123683e
	magicXFS   = 0x58465342
)

// Open opens (and for an image, creates and mounts) the store at opts.Path.
// A directory on a filesystem that cannot clone is refused, saying why,
// and nothing is left of the refused store: no directory, no mount, no
// loop device. With opts.Existing a store that does not exist is an error
// (a read command never creates one).
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("state store: no path")
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, opts, path)
	var me *MissingError
	if err != nil && !errors.As(err, &me) {
		return nil, &OpenError{Path: path, Err: err}
	}
	return s, err
}

// OpenError is a store that cannot be opened; Err says why, without the
// path (front doors name the store as their user gave it).
type OpenError struct {
	Path string
	Err  error
}

func (e *OpenError) Error() string { return fmt.Sprintf("state store %s: %v", quote(e.Path), e.Err) }
func (e *OpenError) Unwrap() error { return e.Err }

func open(ctx context.Context, opts Options, path string) (*Store, error) {
	s := &Store{root: path, opts: opts}
	st, statErr := os.Stat(path)
	switch {
	case statErr != nil && !os.IsNotExist(statErr):
		return nil, statErr
	case statErr != nil && opts.Existing:
		return nil, &MissingError{Path: path}
	case statErr == nil && !st.IsDir() && !st.Mode().IsRegular():
		return nil, fmt.Errorf("not a directory or an image file (%s)", st.Mode().Type())
	case statErr == nil && st.Mode().IsRegular() && !strings.HasSuffix(path, ".img"):
		return nil, errors.New("a file; give a directory on btrfs or XFS, or an image PATH.img that lian-build formats and mounts")
	}
	if isImage(path) {
		return openImage(ctx, s, path, statErr == nil)
	}
	created := false
	if statErr != nil {
		// Refuse before creating anything: the filesystem the directory
		// would be on must clone.
		if err := s.probeFilesystem(existingParent(path)); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, err
		}
		created = true
	}
	if err := s.pickCloner(); err != nil {
		if created {
			os.Remove(path)
		}
		return nil, err
	}
	return s, s.layout()
}

// openImage mounts the image (creating it when it does not exist) and
// opens the store on it; a refused image is unmounted again.
func openImage(ctx context.Context, s *Store, path string, exists bool) (*Store, error) {
	if exists {
		if err := isBtrfsImage(path); err != nil {
			return nil, err
		}
	}
	root, mountedNow, err := mountImage(ctx, path, s.opts.ImageSize)
	if err != nil {
		return nil, err
	}
	s.root, s.image, s.mountedNow = root, path, mountedNow
	s.how = fmt.Sprintf("btrfs image %s mounted at %s", path, s.root)
	if err := s.pickCloner(); err != nil {
		if mountedNow {
			_ = s.Unmount()
		}
		return nil, err
	}
	if err := s.layout(); err != nil {
		return nil, err
	}
	return s, nil
}

// layout makes the store's own directories.
func (s *Store) layout() error {
	for _, d := range []string{"ns", "work"} {
		if err := os.MkdirAll(filepath.Join(s.root, d), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// MissingError is a store that does not exist (for commands that only read).
type MissingError struct{ Path string }

func (e *MissingError) Error() string {
	return fmt.Sprintf("state store %s does not exist (a build with --state-store creates it)", quote(e.Path))
}

// existingParent is the nearest existing directory at or above p.
func existingParent(p string) string {
	for {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// quote quotes a path for a message, control characters escaped.
func quote(p string) string { return strconv.Quote(p) }

// probeFilesystem refuses a directory whose filesystem cannot clone.
func (s *Store) probeFilesystem(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	switch uint32(st.Type) {
	case magicBtrfs, magicXFS:
		return nil
	}
	return fsRefusal(st.Type)
}

// fsRefusal says why a filesystem cannot hold a store.
func fsRefusal(fsType int64) error {
	return fmt.Errorf("its filesystem (%s) cannot clone a directory in constant time; "+
		"give a directory on btrfs or XFS with reflink, or an image file (PATH.img) that lian-build formats and mounts", fsName(fsType))
}

// fsName names a filesystem by its magic number.
func fsName(t int64) string {
	if n, ok := map[uint32]string{0xef53: "ext4", 0x01021994: "tmpfs", 0x794c7630: "overlayfs", 0x6969: "NFS", 0x9123683e: "btrfs", 0x58465342: "XFS", 0x2fc12fc1: "ZFS"}[uint32(t)]; ok {
		return n
	}
	return fmt.Sprintf("type %#x", t)
}

func (s *Store) pickCloner() error {
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		return err
	}
	switch uint32(st.Type) {
	case magicBtrfs:
		s.cloner = btrfsCloner{}
	case magicXFS:
		if err := probeReflink(s.root); err != nil {
			return fmt.Errorf("XFS without reflink (format with mkfs.xfs -m reflink=1): %w", err)
		}
		s.cloner = reflinkCloner{}
	default:
		return fsRefusal(st.Type)
	}
	if s.how == "" {
		s.how = fmt.Sprintf("directory %s", s.root)
	}
	s.how += ", cloned by " + s.cloner.name()
	return nil
}

// probeReflink clones a small file to see that the filesystem shares extents.
func probeReflink(dir string) error {
	src := filepath.Join(dir, ".reflink-probe")
	if err := os.WriteFile(src, []byte("probe"), 0o600); err != nil {
		return err
	}
	defer os.Remove(src)
	defer os.Remove(src + ".clone")
	return cloneFile(src, src+".clone")
}

// MountNote says, when this Open mounted the store's image, that the mount
// stays for the next builds and how to release it ("" otherwise).
func (s *Store) MountNote() string {
	if !s.mountedNow {
		return ""
	}
	return fmt.Sprintf("state store: mounted %s at %s; it stays mounted for the next builds (lian-build state unmount --state-store %s releases it)", s.image, s.root, s.image)
}

// Describe says what the store is and how it clones.
func (s *Store) Describe() string { return s.how }

// Root is the directory the store keeps its states in.
func (s *Store) Root() string { return s.root }
