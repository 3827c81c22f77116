package state_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lian-build/action/internal/state"
	"github.com/lian-build/action/internal/testenv"
)

var ctx = context.Background()

// treeHash hashes every path, mode, owner, link target, xattr and content.
func treeHash(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %o %d:%d rdev=%d", rel, st.Mode, st.Uid, st.Gid, st.Rdev)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += " " + hex.EncodeToString(sum[:8])
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil && n > 0 {
			line += " xattrs=" + strings.ReplaceAll(string(buf[:n]), "\x00", ",")
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:])
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func clone(t *testing.T, s *state.Store, id string, read ...string) *state.Clone {
	t.Helper()
	c, err := s.Clone(ctx, id, state.CloneOptions{Read: read})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func commit(t *testing.T, c *state.Clone, ns string) int {
	t.Helper()
	gen, err := c.Commit(ctx, ns, "test")
	if err != nil {
		t.Fatal(err)
	}
	return gen
}

// committedDir is a namespace's committed generation on disk.
func committedDir(s *state.Store, ns string) string {
	dir := filepath.Join(s.Root(), "ns", strings.ReplaceAll(ns, "/", "%2F"))
	target, _ := os.Readlink(filepath.Join(dir, "current"))
	return filepath.Join(dir, target)
}

// The namespace model on a real btrfs image and on XFS with reflink: an
// empty clone when nothing is committed; a session reads ci/ and commits its
// own dev/, leaving ci/'s bytes unchanged; discard leaves the store as it
// was; overlayfs' markers (xattrs, whiteout devices) and symlinks survive.
func TestCloneCommitDiscard(t *testing.T) {
	for _, fsType := range []string{"btrfs", "xfs"} {
		t.Run(fsType, func(t *testing.T) {
			s := testenv.StateStore(t, fsType, state.Options{})
			t.Logf("store: %s", s.Describe())
			c := clone(t, s, "b1", "ci/app")
			if c.From != "" || c.Generation != 0 {
				t.Fatalf("clone of nothing: %+v", c)
			}
			write(t, filepath.Join(c.Dir, "cache/go-build/aa"), "compiled")
			if err := os.Symlink("cache/go-build/aa", filepath.Join(c.Dir, "link")); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mknod(filepath.Join(c.Dir, "whiteout"), unix.S_IFCHR, 0); err != nil {
				t.Fatal(err)
			}
			if err := unix.Setxattr(filepath.Join(c.Dir, "cache"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				t.Fatal(err)
			}
			if gen := commit(t, c, "ci/app"); gen != 1 {
				t.Fatalf("first commit is gen %d", gen)
			}
			ciHash := treeHash(t, committedDir(s, "ci/app"))

			sess := clone(t, s, "b2", "dev/jpl-app", "ci/app")
			if sess.From != "ci/app" || sess.Generation != 1 || treeHash(t, sess.Dir) != ciHash {
				t.Fatalf("session clone %+v is not ci/app gen 1", sess)
			}
			write(t, filepath.Join(sess.Dir, "cache/go-build/bb"), "the session's")
			commit(t, sess, "dev/jpl-app")
			if got := treeHash(t, committedDir(s, "ci/app")); got != ciHash {
				t.Fatal("a session's commit changed ci/app")
			}
			again := clone(t, s, "b3", "dev/jpl-app", "ci/app")
			if again.From != "dev/jpl-app" {
				t.Fatalf("the session's next build read %q", again.From)
			}
			if b, err := os.ReadFile(filepath.Join(again.Dir, "cache/go-build/bb")); err != nil || string(b) != "the session's" {
				t.Fatalf("the session's write is not in its next clone: %q %v", b, err)
			}
			before := treeHash(t, filepath.Join(s.Root(), "ns"))
			write(t, filepath.Join(again.Dir, "cache/go-build/bb"), "overwritten, then discarded")
			if err := again.Discard(); err != nil {
				t.Fatal(err)
			}
			if treeHash(t, filepath.Join(s.Root(), "ns")) != before {
				t.Fatal("discard changed the committed states")
			}
			if left, _ := os.ReadDir(filepath.Join(s.Root(), "work")); len(left) != 0 {
				t.Fatalf("discard left %v in work/", left)
			}
			infos, err := s.List(ctx)
			if err != nil || len(infos) != 2 {
				t.Fatalf("List = %+v, %v", infos, err)
			}
		})
	}
}

// A build that commits back to the namespace it reads takes the
// generation's own tree (its files are the ones the last build ran on, so
// their pages are in memory); the generation keeps an identical copy. A
// session that reads ci/ takes nothing. Keep gives an all-cached build's
// tree back while its generation is current; otherwise it discards it.
func TestCloneTakesTheTreeOfWhereItCommits(t *testing.T) {
	for _, fsType := range []string{"btrfs", "xfs"} {
		t.Run(fsType, func(t *testing.T) {
			s := testenv.StateStore(t, fsType, state.Options{})
			seed := clone(t, s, "seed", "ci/app")
			write(t, filepath.Join(seed.Dir, "cache/aa"), "compiled")
			commit(t, seed, "ci/app")
			gen := committedDir(s, "ci/app")
			tree, hash := inode(t, filepath.Join(gen, "cache/aa")), treeHash(t, gen)

			sess, err := s.Clone(ctx, "sess", state.CloneOptions{Read: []string{"dev/jpl-app", "ci/app"}, Write: "dev/jpl-app"})
			if err != nil || sess.Took || inode(t, filepath.Join(gen, "cache/aa")) != tree {
				t.Fatalf("a session's clone of ci/app took its tree: %+v, %v", sess, err)
			}
			c, err := s.Clone(ctx, "ci", state.CloneOptions{Read: []string{"ci/app"}, Write: "ci/app"})
			if err != nil || !c.Took || inode(t, filepath.Join(c.Dir, "cache/aa")) != tree {
				t.Fatalf("a CI clone did not take the tree: %+v, %v", c, err)
			}
			if inode(t, filepath.Join(gen, "cache/aa")) == tree || treeHash(t, gen) != hash {
				t.Fatal("the generation does not hold an identical copy")
			}
			write(t, filepath.Join(c.Dir, "history"), "an all-cached build")
			if err := c.Keep(ctx); err != nil {
				t.Fatal(err)
			}
			if inode(t, filepath.Join(gen, "cache/aa")) != tree || committedDir(s, "ci/app") != gen {
				t.Fatal("Keep did not give the tree back to the same generation")
			}

			// Superseded meanwhile: the taken tree is discarded, the new generation stays.
			c = cloneToCommit(t, s, "ci-2", "ci/app")
			other := cloneToCommit(t, s, "ci-3", "ci/app")
			write(t, filepath.Join(other.Dir, "cache/bb"), "newer")
			commit(t, other, "ci/app")
			newer := treeHash(t, committedDir(s, "ci/app"))
			if err := c.Keep(ctx); err != nil {
				t.Fatal(err)
			}
			if treeHash(t, committedDir(s, "ci/app")) != newer {
				t.Fatal("Keep of a superseded clone changed the current generation")
			}
			if err := sess.Discard(); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(filepath.Join(s.Root(), "work")); len(left) != 0 {
				t.Fatalf("left in work/: %v", left)
			}
		})
	}
}

// cloneToCommit clones ns for a build that commits back to it.
func cloneToCommit(t *testing.T, s *state.Store, id, ns string) *state.Clone {
	t.Helper()
	c, err := s.Clone(ctx, id, state.CloneOptions{Read: []string{ns}, Write: ns})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino<<20 ^ st.Dev
}

// A directory on a filesystem that cannot clone (this machine's ext4) is
// refused, saying what would do.
func TestRefusesAFilesystemThatCannotClone(t *testing.T) {
	_, err := state.Open(ctx, state.Options{Path: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "cannot clone") || !strings.Contains(err.Error(), "btrfs") {
		t.Fatalf("err = %v", err)
	}
}

// Two builds of one namespace, each on its own clone, both succeed: one
// generation each, the last one current, no other left.
func TestConcurrentCommits(t *testing.T) {
	s := testenv.StateStore(t, "btrfs", state.Options{})
	base := clone(t, s, "seed", "ci/app")
	write(t, filepath.Join(base.Dir, "f"), "0")
	commit(t, base, "ci/app")
	a, b := clone(t, s, "a", "ci/app"), clone(t, s, "b", "ci/app")
	write(t, filepath.Join(a.Dir, "f"), "a")
	write(t, filepath.Join(b.Dir, "f"), "b")
	errs := make(chan error, 2)
	for _, c := range []*state.Clone{a, b} {
		go func() { _, err := c.Commit(ctx, "ci/app", "ci"); errs <- err }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	infos, _ := s.List(ctx)
	if len(infos) != 1 || infos[0].Generation != 3 {
		t.Fatalf("after two commits: %+v", infos)
	}
	if _, err := s.Tidy(ctx, "ci/app"); err != nil {
		t.Fatal(err)
	}
	if gens := generationsOnDisk(t, s, "ci/app"); len(gens) != 1 {
		t.Fatalf("generations on disk after Tidy: %v, want the current one", gens)
	}
}

func generationsOnDisk(t *testing.T, s *state.Store, ns string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Root(), "ns", strings.ReplaceAll(ns, "/", "%2F")))
	if err != nil {
		t.Fatal(err)
	}
	var gens []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "gen-") {
			gens = append(gens, e.Name())
		}
	}
	return gens
}

// A commit leaves the superseded generation and the new one's size for
// later: Tidy removes the one, and measures the current generation once its
// kept size is ten generations old; List measures what was not; the next
// clone knows the size last measured, and of which generation.
func TestTidyDoesWhatACommitLeaves(t *testing.T) {
	s := testenv.StateStore(t, "btrfs", state.Options{})
	c := clone(t, s, "b1", "ci/app")
	write(t, filepath.Join(c.Dir, "blob"), strings.Repeat("x", 1<<20))
	commit(t, c, "ci/app")
	infos, err := s.List(ctx)
	if err != nil || len(infos) != 1 || infos[0].Bytes < 1<<20 {
		t.Fatalf("List measures a size not yet measured: %+v, %v", infos, err)
	}
	c = clone(t, s, "b2", "ci/app")
	if c.Bytes != infos[0].Bytes {
		t.Fatalf("the clone of gen 1 says %d bytes, List %d", c.Bytes, infos[0].Bytes)
	}
	for i := range 3000 {
		write(t, filepath.Join(c.Dir, "many", fmt.Sprintf("%04d", i)), strings.Repeat("y", 4096))
	}
	commit(t, c, "ci/app")
	if gens := generationsOnDisk(t, s, "ci/app"); len(gens) != 2 {
		t.Fatalf("after the second commit: %v, want gen 1 left for Tidy and gen 2", gens)
	}
	if c := clone(t, s, "b3", "ci/app"); c.Bytes != infos[0].Bytes || c.BytesGen != 1 || c.Generation != 2 {
		t.Fatalf("gen 2 is not measured yet, its clone says %d bytes of gen %d (gen %d)", c.Bytes, c.BytesGen, c.Generation)
	} else if err := c.Discard(); err != nil {
		t.Fatal(err)
	}
	// A Tidy stopped (the build it ran beside ended) sets the superseded
	// generation aside and leaves its deletion to the next one.
	stopped, stop := context.WithCancel(ctx)
	stop()
	if _, err := s.Tidy(stopped, "ci/app"); err == nil {
		t.Fatal("a stopped Tidy did all its work")
	}
	nsDir := filepath.Join(s.Root(), "ns", "ci%2Fapp")
	if trash, _ := filepath.Glob(filepath.Join(nsDir, ".trash-gen-000001-*")); len(trash) != 1 || len(generationsOnDisk(t, s, "ci/app")) != 1 {
		t.Fatalf("after a stopped Tidy: set aside %v, generations %v", trash, generationsOnDisk(t, s, "ci/app"))
	}
	// Gen 1's size is one generation old: kept, not measured again.
	n, err := s.Tidy(ctx, "ci/app")
	if err != nil || n != (state.Size{Bytes: infos[0].Bytes, Generation: 1}) {
		t.Fatalf("Tidy of gen 2 gave %+v, %v; want gen 1's size kept", n, err)
	}
	if gens := generationsOnDisk(t, s, "ci/app"); len(gens) != 1 || gens[0] != "gen-000002" {
		t.Fatalf("after Tidy: %v", gens)
	}
	if trash, _ := filepath.Glob(filepath.Join(nsDir, ".trash-*")); len(trash) != 0 {
		t.Fatalf("Tidy left %v", trash)
	}
	// Ten generations on, Tidy measures the current one.
	for i := 3; i <= 11; i++ {
		commit(t, cloneToCommit(t, s, fmt.Sprintf("b%d", i+1), "ci/app"), "ci/app")
	}
	if n, err = s.Tidy(ctx, "ci/app"); err != nil || n.Generation != 11 || n.Bytes < 1<<20+3000*4096 {
		t.Fatalf("Tidy of gen 11 gave %+v, %v; want it measured", n, err)
	}
	if again, err := s.Tidy(ctx, "ci/app"); err != nil || again != n {
		t.Fatalf("Tidy again: %+v, %v (want the kept %+v)", again, err, n)
	}
	if gens := generationsOnDisk(t, s, "ci/app"); len(gens) != 1 || gens[0] != "gen-000011" {
		t.Fatalf("after Tidy: %v", gens)
	}
	if n, err := s.Tidy(ctx, "ci/never-committed"); err != nil || n != (state.Size{}) {
		t.Fatalf("Tidy of a namespace never committed: %+v, %v", n, err)
	}
	if _, err := os.Lstat(filepath.Join(s.Root(), "ns", "ci%2Fnever-committed")); !os.IsNotExist(err) {
		t.Fatalf("Tidy made a namespace: %v", err)
	}
}

// Eviction keeps the store under its bound, least recently used first,
// never the namespace just committed.
func TestEvictLeastRecentlyUsed(t *testing.T) {
	s := testenv.StateStore(t, "btrfs", state.Options{MaxBytes: 3 << 20})
	for _, ns := range []string{"ci/old", "ci/mid", "ci/new"} {
		c := clone(t, s, "x", ns)
		write(t, filepath.Join(c.Dir, "blob"), strings.Repeat("x", 1<<20+len(ns)))
		commit(t, c, ns)
		time.Sleep(10 * time.Millisecond)
	}
	clone(t, s, "touch", "ci/old").Discard() // ci/old is now the most recently used
	evicted, err := s.Evict(ctx, "ci/new")
	if err != nil || len(evicted) != 1 || evicted[0] != "ci/mid" {
		t.Fatalf("evicted %v, %v (want ci/mid)", evicted, err)
	}
}

// kill -9 while commits run: the namespace still opens on an intact
// generation, and gc removes what the killed process left.
func TestKill9DuringCommit(t *testing.T) {
	if os.Getenv("LIAN_STATE_COMMIT_LOOP") != "" {
		commitLoop(os.Getenv("LIAN_STATE_COMMIT_LOOP"))
		return
	}
	s := testenv.StateStore(t, "btrfs", state.Options{})
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestKill9DuringCommit$")
		cmd.Env = append(os.Environ(), "LIAN_STATE_COMMIT_LOOP="+s.Root())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(150+70*round) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		opened, err := state.Open(ctx, state.Options{Path: s.Root()})
		if err != nil {
			t.Fatal(err)
		}
		c := clone(t, opened, fmt.Sprintf("check-%d", round), "ci/app")
		if c.Generation > 0 {
			b, err := os.ReadFile(filepath.Join(c.Dir, "gen"))
			if err != nil || len(b) != 64<<10 {
				t.Fatalf("round %d: generation %d is torn: %d bytes, %v", round, c.Generation, len(b), err)
			}
		}
		_ = c.Discard()
		removed, err := opened.GC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: gen %d, gc removed %v", round, c.Generation, removed)
		if left, _ := os.ReadDir(filepath.Join(s.Root(), "work")); len(left) != 0 {
			t.Fatalf("after gc: %v in work/", left)
		}
	}
}

// commitLoop clones, writes a 64 KiB file and commits, until killed.
func commitLoop(root string) {
	s, err := state.Open(ctx, state.Options{Path: root})
	if err != nil {
		panic(err)
	}
	for i := 0; ; i++ {
		c, err := s.Clone(ctx, fmt.Sprintf("loop-%d-%d", os.Getpid(), i), state.CloneOptions{Read: []string{"ci/app"}, Write: "ci/app"})
		if err != nil {
			panic(err)
		}
		if err := os.WriteFile(filepath.Join(c.Dir, "gen"), []byte(strings.Repeat("g", 64<<10)), 0o644); err != nil {
			panic(err)
		}
		if _, err := c.Commit(ctx, "ci/app", "loop"); err != nil {
			panic(err)
		}
	}
}

// Many builds of one process clone one namespace at once (they share its
// lock, and each records the last use): every clone succeeds.
func TestConcurrentClonesInOneProcess(t *testing.T) {
	s := testenv.StateStore(t, "btrfs", state.Options{})
	seed := clone(t, s, "seed", "ci/app")
	write(t, filepath.Join(seed.Dir, "f"), "x")
	commit(t, seed, "ci/app")
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			c, err := s.Clone(ctx, fmt.Sprintf("c%d", i), state.CloneOptions{Read: []string{"ci/app"}, Write: "ci/app"})
			if err == nil {
				err = c.Discard()
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Namespace names given to any state operation pass the rule builds make
// them by; an entry the store did not make (a link, a file) is never
// followed or deleted through, and a clone a build holds survives.
func TestHostileNamespacesStayInsideTheStore(t *testing.T) {
	s := testenv.StateStore(t, "btrfs", state.Options{})
	held := clone(t, s, "held-build")
	write(t, filepath.Join(held.Dir, "marker"), "x")
	c := clone(t, s, "first")
	write(t, filepath.Join(c.Dir, "f"), "1")
	commit(t, c, "ci/app")
	victim := t.TempDir()
	write(t, filepath.Join(victim, "precious"), "keep")
	if err := os.Symlink(victim, filepath.Join(s.Root(), "ns", "ci%2Flinked")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(s.Root(), "ns", "ci%2Ffile"), "not a namespace")
	for _, ns := range []string{"..", ".", "", "/", "ci/..", "ci/../..", "../ns", "ci", "ci/", "ci/App", "ci/a/b", "ci/a\x1b[2Jb", "ci/a\x00b", "x/app", strings.Repeat("a", 300)} {
		err := s.Remove(ctx, ns)
		if err == nil || !strings.Contains(err.Error(), "invalid namespace") {
			t.Errorf("Remove(%q) = %v, want an invalid namespace", ns, err)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\x1b\x00") {
			t.Errorf("Remove(%q) echoes control characters: %q", ns, err)
		}
		if _, err := s.Clone(ctx, "c-"+fmt.Sprint(len(ns)), state.CloneOptions{Read: []string{ns}}); err == nil {
			t.Errorf("Clone reading %q was accepted", ns)
		}
	}
	if err := s.Remove(ctx, "ci/linked"); err == nil || !strings.Contains(err.Error(), "not a directory the store made") {
		t.Errorf("Remove through a link: %v", err)
	}
	if err := s.Remove(ctx, "ci/file"); err == nil {
		t.Error("Remove of a planted file succeeded")
	}
	if _, err := s.GC(ctx); err != nil {
		t.Errorf("gc: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(victim, "precious")); err != nil || string(b) != "keep" {
		t.Fatalf("a file behind a planted link was touched: %v", err)
	}
	if _, err := os.Stat(filepath.Join(held.Dir, "marker")); err != nil {
		t.Fatalf("the clone a build holds is gone: %v", err)
	}
	infos, err := s.List(ctx)
	if err != nil || len(infos) != 1 || infos[0].Namespace != "ci/app" {
		t.Fatalf("list = %v, %v", infos, err)
	}
	if err := s.Remove(ctx, "ci/app"); err != nil {
		t.Fatal(err)
	}
	_ = held.Discard()
}

// A generation survives a host crash: a tree written without a single
// fsync (as a local runner's buildkitd writes it) is durable once Commit, or
// Keep giving an all-cached build's tree back, returns. The crash is a copy
// of the store's image taken right after, with everything the filesystem
// had not yet written lost: what a power cut would leave on the disk. The
// copy is mounted as a store of its own; its current generation must be the
// one committed, whole.
func TestCommitIsDurableWithoutTheBuildsFsyncs(t *testing.T) {
	s, img := testenv.StateStoreImage(t, state.Options{})
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	c := cloneToCommit(t, s, "commit", "ci/app")
	write(t, filepath.Join(c.Dir, "cache", "data"), string(data))
	gen := commit(t, c, "ci/app")
	assertAfterCrash(t, img, "commit", gen, data)

	c = cloneToCommit(t, s, "keep", "ci/app")
	data[0], data[len(data)-1] = 'k', 'k'
	write(t, filepath.Join(c.Dir, "cache", "data"), string(data))
	if err := c.Keep(ctx); err != nil || !c.Took {
		t.Fatalf("keep: %v (took the tree: %v)", err, c.Took)
	}
	assertAfterCrash(t, img, "keep", gen, data)
}

func assertAfterCrash(t *testing.T, img, after string, gen int, data []byte) {
	t.Helper()
	crashed := filepath.Join(t.TempDir(), "crashed.img")
	if out, err := exec.Command("cp", "--sparse=always", img, crashed).CombinedOutput(); err != nil {
		t.Fatalf("copy the image: %v: %s", err, out)
	}
	s, err := state.Open(ctx, state.Options{Path: crashed, Existing: true})
	if err != nil {
		t.Fatalf("after %s, the image as a crash left it does not open: %v", after, err)
	}
	defer func() {
		if err := s.Unmount(); err != nil {
			t.Error(err)
		}
	}()
	c := clone(t, s, "check", "ci/app")
	defer c.Discard()
	if c.Generation != gen {
		t.Fatalf("after %s and a crash, ci/app is at generation %d, want %d", after, c.Generation, gen)
	}
	b, err := os.ReadFile(filepath.Join(c.Dir, "cache", "data"))
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("after %s and a crash, generation %d's file is not what was written: %d of %d bytes, %v", after, gen, len(b), len(data), err)
	}
}
