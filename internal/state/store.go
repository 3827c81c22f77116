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
}

// DefaultImageSize is the size of a new store image.
const DefaultImageSize = 20 << 30

// Store is an open state store.
type Store struct {
	root   string
	how    string // what the root is, for people
	cloner cloner
	opts   Options
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
// A directory on a filesystem that cannot clone is refused, saying why.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("state store: no path")
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, err
	}
	s := &Store{root: path, opts: opts}
	if isImage(path) {
		if s.root, err = mountImage(ctx, path, opts.ImageSize); err != nil {
			return nil, fmt.Errorf("state store %s: %w", path, err)
		}
		s.how = fmt.Sprintf("btrfs image %s mounted at %s", path, s.root)
	} else if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state store %s: %w", path, err)
	}
	if err := s.pickCloner(); err != nil {
		return nil, err
	}
	for _, d := range []string{"ns", "work"} {
		if err := os.MkdirAll(filepath.Join(s.root, d), 0o700); err != nil {
			return nil, fmt.Errorf("state store %s: %w", s.root, err)
		}
	}
	return s, nil
}

func (s *Store) pickCloner() error {
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		return fmt.Errorf("state store %s: %w", s.root, err)
	}
	switch uint32(st.Type) {
	case magicBtrfs:
		s.cloner = btrfsCloner{}
	case magicXFS:
		if err := probeReflink(s.root); err != nil {
			return fmt.Errorf("state store %s: XFS without reflink (format with mkfs.xfs -m reflink=1): %w", s.root, err)
		}
		s.cloner = reflinkCloner{}
	default:
		return fmt.Errorf("state store %s: its filesystem (type %#x) cannot clone a directory in constant time; "+
			"give a directory on btrfs or XFS with reflink, or an image file (PATH.img) that lian-build formats and mounts", s.root, st.Type)
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

// Describe says what the store is and how it clones.
func (s *Store) Describe() string { return s.how }

// Root is the directory the store keeps its states in.
func (s *Store) Root() string { return s.root }
