package state

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lian-build/action/internal/proc"
)

// Clone is one build's private copy of a committed state (or an empty
// state, when none of the namespaces it may read has one yet).
type Clone struct {
	// Dir is the clone: buildkitd's root for the build.
	Dir string
	// From is the namespace the clone was taken from ("": none, empty state).
	From string
	// Generation is From's generation that was cloned (0: none).
	Generation int
	// Bytes is the size last measured of From: of generation BytesGen,
	// Generation or an earlier one (0: never measured; see Tidy).
	Bytes    int64
	BytesGen int
	// CloneTime is how long the clone took.
	CloneTime time.Duration
	// Took: the clone is the generation's own tree, taken for a build that
	// commits back to From (CloneOptions.Write); the generation keeps a copy.
	Took bool

	s    *Store
	id   string
	done bool
}

// CloneOptions says what a build may read and where it commits.
type CloneOptions struct {
	// Read: the namespaces to clone from, the first that has a committed
	// state wins.
	Read []string
	// Write: the namespace the build commits to, if it commits ("": none).
	Write string
}

// Clone makes the build's clone: of the first of opts.Read that has a
// committed state, or an empty state. id names the clone (the runner's
// lease).
func (s *Store) Clone(ctx context.Context, id string, opts CloneOptions) (*Clone, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	c := &Clone{s: s, id: id, Dir: filepath.Join(s.root, "work", id)}
	if err := writeOwner(c.Dir + ".owner"); err != nil {
		return nil, fmt.Errorf("state store: %w", err)
	}
	start := time.Now()
	for _, ns := range opts.Read {
		ok, err := c.cloneFrom(ctx, ns, ns == opts.Write)
		if err != nil {
			return nil, errors.Join(err, c.Discard())
		}
		if ok {
			c.CloneTime = time.Since(start)
			return c, nil
		}
	}
	if err := s.cloner.create(c.Dir); err != nil {
		return nil, errors.Join(fmt.Errorf("state store: %w", err), c.Discard())
	}
	c.CloneTime = time.Since(start)
	return c, nil
}

// cloneFrom clones ns's committed generation, holding its lock so that no
// commit removes the generation meanwhile. false: ns has none.
//
// take: the build commits back to ns, so it takes the generation's own tree
// and the generation keeps the copy (the same content, swapped by one
// rename). That tree is the one ns's previous build ran in: its files'
// pages are still in memory, where a copy's new inodes would be read from
// disk again (buildkitd's databases at its start, the toolchain, the cache
// mounts: 0.1–0.2 s of a sub-second build). The lock is exclusive when
// taking, so that no other clone copies the tree while it changes hands.
func (c *Clone) cloneFrom(ctx context.Context, ns string, take bool) (bool, error) {
	how := unix.LOCK_SH
	if take {
		how = unix.LOCK_EX
	}
	dir, unlock, err := c.s.lockNS(ctx, ns, how)
	if err != nil {
		return false, err
	}
	defer unlock()
	gen, err := current(dir)
	if err != nil || gen == 0 {
		return false, err
	}
	src := genDir(dir, gen)
	if err := c.s.cloner.clone(src, c.Dir); err != nil {
		return false, fmt.Errorf("state store: clone %s gen %d: %w", ns, gen, err)
	}
	if take {
		if err := c.take(src); err != nil {
			return false, fmt.Errorf("state store: clone %s gen %d: %w", ns, gen, err)
		}
	}
	m, _ := readMeta(dir)
	c.From, c.Generation = ns, gen
	if m.BytesGen > 0 && m.BytesGen <= gen {
		c.Bytes, c.BytesGen = m.Bytes, m.BytesGen
	}
	m.Namespace, m.LastUsed = ns, time.Now().UTC()
	return true, writeMeta(dir, m)
}

// take swaps the clone with the generation it copies, atomically: a kill at
// any point leaves the generation complete. A filesystem that cannot swap
// (EINVAL) leaves the copy to the build.
func (c *Clone) take(gen string) error {
	err := exchange(c.Dir, gen)
	if errors.Is(err, unix.EINVAL) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("take the generation's tree: %w", err)
	}
	c.Took = true
	return nil
}

// exchange swaps two paths in one step.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// Commit makes the clone ns's next generation, atomically: the generation
// is renamed into place, then the current link swapped. buildkitd must
// have stopped. writer is who committed (an actor). Concurrent commits of
// one namespace each get their own generation; the last one is current.
// What can wait is left for Tidy, off the build's critical path: the
// superseded generation's removal and the new one's size (a walk of every
// file: 0.4 s for a 3 GB Rust state).
func (c *Clone) Commit(ctx context.Context, ns, writer string) (int, error) {
	if c.done {
		return 0, errors.New("state store: clone already committed or discarded")
	}
	if err := syncFS(c.Dir); err != nil {
		return 0, fmt.Errorf("state store: commit %s: %w", ns, err)
	}
	dir, unlock, err := c.s.lockNS(ctx, ns, unix.LOCK_EX)
	if err != nil {
		return 0, err
	}
	defer unlock()
	prev, err := current(dir)
	if err != nil {
		return 0, err
	}
	gen := max(prev, latest(dir)) + 1
	if err := os.Rename(c.Dir, genDir(dir, gen)); err != nil {
		return 0, fmt.Errorf("state store: commit %s gen %d: %w", ns, gen, err)
	}
	c.done = true
	_ = os.Remove(c.Dir + ".owner")
	if err := setCurrent(dir, gen); err != nil {
		return 0, err
	}
	// The size last measured stays, of the generation it was measured on.
	m, _ := readMeta(dir)
	now := time.Now().UTC()
	m.Namespace, m.LastUsed, m.Committed, m.LastWriter = ns, now, now, writer
	return gen, writeMeta(dir, m)
}

// Keep ends a clone whose build changed nothing worth a generation (every
// step cached): a clone that took its generation's tree gives it back, if
// the generation is still current, and the copy is discarded instead.
// The tree then holds what buildkitd wrote of such a build (its history,
// last-use times) beside the generation's content. Giving the tree back
// costs a rename; discarding it would drop its pages from memory (0.16 s
// for a 1 GB Go state) and leave the namespace a copy to read cold. A clone
// that took nothing is discarded.
func (c *Clone) Keep(ctx context.Context) error {
	if c.Took && !c.done {
		if err := c.giveBack(ctx); err != nil {
			return errors.Join(err, c.Discard())
		}
	}
	return c.Discard()
}

func (c *Clone) giveBack(ctx context.Context) error {
	if err := syncFS(c.Dir); err != nil {
		return fmt.Errorf("state store: give %s gen %d its tree back: %w", c.From, c.Generation, err)
	}
	dir, unlock, err := c.s.lockNS(ctx, c.From, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	if gen, err := current(dir); err != nil || gen != c.Generation {
		return err // superseded meanwhile: the tree is not needed
	}
	if err := exchange(c.Dir, genDir(dir, c.Generation)); err != nil {
		return fmt.Errorf("state store: give %s gen %d its tree back: %w", c.From, c.Generation, err)
	}
	return syncDir(dir)
}

// Discard throws the clone away. It is safe to call twice and after Commit.
func (c *Clone) Discard() error {
	if c.done {
		return nil
	}
	c.done = true
	err := c.s.cloner.remove(c.Dir)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("state store: discard %s: %w", c.Dir, err)
	}
	_ = os.Remove(c.Dir + ".owner")
	return nil
}

// nsDir is a namespace's directory (created on first use).
func (s *Store) nsDir(ns string) (string, error) {
	if err := ValidNamespace(ns); err != nil {
		return "", err
	}
	dir := filepath.Join(s.root, "ns", url.PathEscape(ns))
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return "", err
	}
	return dir, ownDir(dir)
}

// lockNS is ns's directory (created on first use), locked (flock how).
func (s *Store) lockNS(ctx context.Context, ns string, how int) (string, func(), error) {
	dir, err := s.nsDir(ns)
	if err != nil {
		return "", nil, err
	}
	unlock, err := lock(ctx, dir, how)
	return dir, unlock, err
}

// nsRE is a cache namespace: ci/NAME or dev/NAME, NAME by the registry's
// path-component rules (a workspace, or an actor id and a workspace).
var nsRE = regexp.MustCompile(`^(ci|dev)/[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// maxNamespace bounds a namespace: dev/ID-WORKSPACE, each at most 100.
const maxNamespace = 4 + 100 + 1 + 100

// ValidNamespace checks a namespace name the way a build makes them (every
// state command takes names by this rule only).
func ValidNamespace(ns string) error {
	if len(ns) > maxNamespace || !nsRE.MatchString(ns) {
		return fmt.Errorf("state store: invalid namespace %s: want ci/NAME or dev/NAME, NAME of lower-case letters and digits separated by single '.', '_' or '-'", quoteClean(ns))
	}
	return nil
}

// quoteClean quotes a name for a message, control characters escaped.
func quoteClean(s string) string {
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return strconv.Quote(s)
}

// ownDir refuses a store entry that is not a directory the store made: a
// symbolic link or a file is never followed or deleted through.
func ownDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("state store: %s is not a directory the store made (%s); left alone — remove it by hand if it is not yours", dir, st.Mode().Type())
	}
	return nil
}

func genDir(dir string, gen int) string { return filepath.Join(dir, fmt.Sprintf("gen-%06d", gen)) }

// current is the committed generation (0: none).
func current(dir string) (int, error) {
	target, err := os.Readlink(filepath.Join(dir, "current"))
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return parseGen(target)
}

func parseGen(name string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "gen-"))
	if err != nil || !strings.HasPrefix(name, "gen-") {
		return 0, fmt.Errorf("state store: %q is not a generation", name)
	}
	return n, nil
}

// latest is the highest generation present, committed or not.
func latest(dir string) int {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if g, err := parseGen(e.Name()); err == nil {
			n = max(n, g)
		}
	}
	return n
}

// setCurrent points current at gen with one rename: readers see the old
// generation or the new one, never neither.
func setCurrent(dir string, gen int) error {
	tmp := filepath.Join(dir, fmt.Sprintf(".current-%d", os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(genDir(dir, gen)), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "current")); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncFS makes everything written to dir's filesystem durable. A runner
// may write its tree without syncing (the local provider's buildkitd does),
// so a tree becomes a generation only after this: a host crash then leaves
// the previous generation or the new one, complete.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Store) removeOldGenerations(dir string, keep int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if g, err := parseGen(e.Name()); err == nil && g != keep {
			errs = append(errs, s.cloner.remove(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

func validID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\\ ") || strings.HasPrefix(id, ".") || len(id) > 128 {
		return fmt.Errorf("state store: invalid clone id %q", id)
	}
	return nil
}

// writeOwner records this process as the clone's owner, for gc.
func writeOwner(path string) error {
	pid, start := proc.Self()
	return os.WriteFile(path, []byte(fmt.Sprintf("%d %d\n", pid, start)), 0o600)
}

// ownerAlive reads an owner file: is the process that wrote it still there?
func ownerAlive(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &start); err != nil {
		return false
	}
	return proc.Alive(pid, start)
}
