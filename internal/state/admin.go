package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// meta is what the store knows of a namespace beside its generations.
type meta struct {
	Namespace string `json:"namespace"`
	// Bytes is the size of generation BytesGen (any other: not measured).
	Bytes      int64     `json:"bytes"`
	BytesGen   int       `json:"bytes_generation,omitempty"`
	LastUsed   time.Time `json:"last_used"`
	Committed  time.Time `json:"committed"`
	LastWriter string    `json:"last_writer"`
}

func readMeta(dir string) (meta, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// writeMeta replaces meta.json in one rename.
func writeMeta(dir string, m meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	// A file of its own: clones of one namespace write the last use at once
	// (they share the lock), in one process too.
	f, err := os.CreateTemp(dir, ".meta-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, "meta.json"))
}

// lock takes the namespace's flock (LOCK_SH or LOCK_EX), waiting at most
// as long as ctx allows.
func lock(ctx context.Context, dir string, how int) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("state store: waiting for %s: %w", dir, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// diskUsage is the space a tree's files take (blocks, counted once per
// inode). ctx stops the walk.
func diskUsage(ctx context.Context, root string) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if len(seen)%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && !seen[st.Ino] {
			seen[st.Ino] = true
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}

// Info describes a namespace's committed state.
type Info struct {
	Namespace  string    `json:"namespace"`
	Generation int       `json:"generation"`
	Bytes      int64     `json:"bytes"`
	LastUsed   time.Time `json:"last_used"`
	Committed  time.Time `json:"committed"`
	LastWriter string    `json:"last_writer"`
}

// List is every namespace with a committed state, most recently used
// first. It measures the sizes no one has measured yet.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "ns"))
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range entries {
		dir := filepath.Join(s.root, "ns", e.Name())
		if !e.IsDir() {
			continue // not the store's: never followed
		}
		m, gen, err := s.measure(ctx, dir, 1)
		if err != nil {
			return nil, err
		}
		if gen == 0 {
			continue
		}
		ns, _ := url.PathUnescape(e.Name())
		out = append(out, Info{Namespace: ns, Generation: gen, Bytes: m.Bytes, LastUsed: m.LastUsed, Committed: m.Committed, LastWriter: m.LastWriter})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}

// Remove deletes a namespace's state (every generation).
func (s *Store) Remove(ctx context.Context, ns string) error {
	dir, err := s.existingNSDir(ns)
	if err != nil {
		return err
	}
	unlock, err := lock(ctx, dir, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	_ = os.Remove(filepath.Join(dir, "current"))
	if err := s.removeOldGenerations(dir, -1); err != nil {
		return err
	}
	if err := s.emptyTrash(ctx, dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// existingNSDir is ns's directory, which must exist (NoNamespaceError) and
// be the store's own; unlike nsDir it never makes one.
func (s *Store) existingNSDir(ns string) (string, error) {
	if err := ValidNamespace(ns); err != nil {
		return "", err
	}
	dir := filepath.Join(s.root, "ns", url.PathEscape(ns))
	if _, err := os.Lstat(dir); err != nil {
		return "", &NoNamespaceError{Namespace: ns}
	}
	return dir, ownDir(dir)
}

// NoNamespaceError is a namespace the store holds no state for.
type NoNamespaceError struct{ Namespace string }

func (e *NoNamespaceError) Error() string {
	return fmt.Sprintf("state store: no namespace %s", quoteClean(e.Namespace))
}

// GC removes what interrupted builds and commits left: clones whose owner
// is gone and that no runner still uses, generations no current link names
// (also those a commit left for Tidy), and temporary files. It returns what
// it removed.
func (s *Store) GC(ctx context.Context) ([]string, error) {
	var removed []string
	var errs []error
	work := filepath.Join(s.root, "work")
	entries, err := os.ReadDir(work)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if e.Type()&os.ModeSymlink != 0 {
			continue // not the store's: never followed or deleted through
		}
		if clone, ok := strings.CutSuffix(name, ".owner"); ok {
			// An owner file without its clone: the process died before cloning
			// or right after committing.
			_, cerr := os.Lstat(filepath.Join(work, clone))
			if os.IsNotExist(cerr) && !ownerAlive(filepath.Join(work, name)) {
				// (Discarding the clone above may have removed it already.)
				if err := os.Remove(filepath.Join(work, name)); err == nil {
					removed = append(removed, "owner file "+name)
				} else if !os.IsNotExist(err) {
					errs = append(errs, err)
				}
			}
			continue
		}
		// A live owner's clone, or one a runner still has mounts in (run
		// `lian-build runners gc` first), is not left behind.
		if ownerAlive(filepath.Join(work, name+".owner")) || busy(filepath.Join(work, name)) {
			continue
		}
		c := &Clone{s: s, Dir: filepath.Join(work, name)}
		if err := c.Discard(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "clone "+name)
	}
	nss, err := os.ReadDir(filepath.Join(s.root, "ns"))
	if err != nil {
		return removed, err
	}
	for _, e := range nss {
		if !e.IsDir() {
			continue // not the store's: never followed or deleted through
		}
		r, err := s.gcNamespace(ctx, filepath.Join(s.root, "ns", e.Name()))
		removed = append(removed, r...)
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// gcNamespace removes a namespace's generations other than the current
// one (uncommitted or superseded) and its temporary files. Under the lock
// it only sets them aside (a rename), so that a commit or a clone waits for
// renames, not deletions; ctx stops the deletions between entries, and
// what is left aside goes the next time.
func (s *Store) gcNamespace(ctx context.Context, dir string) ([]string, error) {
	names, err := setAside(ctx, dir)
	ns, _ := url.PathUnescape(filepath.Base(dir))
	removed := make([]string, 0, len(names))
	for _, n := range names {
		removed = append(removed, fmt.Sprintf("%s %s", ns, n))
	}
	return removed, errors.Join(err, s.emptyTrash(ctx, dir))
}

// trashPrefix names what gcNamespace set aside for deletion.
const trashPrefix = ".trash-"

func setAside(ctx context.Context, dir string) ([]string, error) {
	unlock, err := lock(ctx, dir, unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer unlock()
	gen, err := current(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		g, perr := parseGen(e.Name())
		stale := (perr == nil && g != gen) || strings.HasPrefix(e.Name(), ".current-") || strings.HasPrefix(e.Name(), ".meta-")
		if !stale {
			continue
		}
		aside := fmt.Sprintf("%s%s-%d", trashPrefix, e.Name(), time.Now().UnixNano())
		if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(dir, aside)); err != nil {
			return names, err
		}
		names = append(names, e.Name())
	}
	return names, nil
}

// emptyTrash deletes what was set aside (another process may be deleting
// it too).
func (s *Store) emptyTrash(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), trashPrefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.cloner.remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Evict removes the least recently used namespaces' states while the
// total exceeds Options.MaxBytes, never keep (the one just committed). It
// returns the namespaces it evicted.
func (s *Store) Evict(ctx context.Context, keep string) ([]string, error) {
	if s.opts.MaxBytes <= 0 {
		return nil, nil
	}
	infos, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, i := range infos {
		total += i.Bytes
	}
	var evicted []string
	for i := len(infos) - 1; i >= 0 && total > s.opts.MaxBytes; i-- {
		if infos[i].Namespace == keep {
			continue
		}
		if err := s.Remove(ctx, infos[i].Namespace); err != nil {
			return evicted, err
		}
		total -= infos[i].Bytes
		evicted = append(evicted, infos[i].Namespace)
	}
	return evicted, nil
}
