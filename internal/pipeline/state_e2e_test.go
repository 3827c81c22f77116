package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/state"
	"github.com/lian-build/action/internal/testenv"
)

// stateEnv is a pipeline whose runners start on clones of a btrfs state store.
func stateEnv(t *testing.T) (*env, *state.Store) {
	e := newEnv(t, nil)
	st := testenv.StateStore(t, "btrfs", state.Options{})
	p, err := pipeline.New(pipeline.Config{Provider: e.prov, State: st, SampleEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	return e, st
}

// cacheMountDockerfile appends a line to a cache mount and prints what the
// mount held before; the stamp file makes the step run every time.
const cacheMountDockerfile = `FROM base
COPY stamp /stamp
RUN --mount=type=cache,target=/c,id=warm sh -c 'echo "held:[$(cat /c/log 2>/dev/null | tr "\n" " ")]"; cat /stamp >> /c/log'
`

// heldRE finds the step's output line, not the echo command in the step's title.
var heldRE = regexp.MustCompile(`held:\[([^\]$"]*)\]`)

// warmBuild builds as actor with the stamp as the line it adds; it returns
// the result and what the cache mount held before the step.
func warmBuild(t *testing.T, e *env, actor cache.Actor, disp cache.Disposition, stamp string, extra string) (pipeline.Result, string, error) {
	t.Helper()
	dir := project(t, cacheMountDockerfile+extra, map[string]string{"stamp": stamp + "\n"})
	req := e.request(dir)
	req.Actor, req.Cache.Disposition = actor, disp
	var progress bytes.Buffer
	req.Build.ProgressOut = &progress
	res, err := e.p.Run(context.Background(), req)
	held := ""
	if m := heldRE.FindStringSubmatch(progress.String()); m != nil {
		held = strings.TrimSpace(m[1])
	}
	return res, held, err
}

// stateBytes hashes every file of a namespace's committed generation (not
// its meta.json, which records the last use).
func stateBytes(t *testing.T, st *state.Store, ns string) string {
	t.Helper()
	dir := filepath.Join(st.Root(), "ns", strings.ReplaceAll(ns, "/", "%2F"))
	target, err := os.Readlink(filepath.Join(dir, "current"))
	if err != nil {
		t.Fatalf("%s has no committed state: %v", ns, err)
	}
	h := sha256.New()
	err = filepath.WalkDir(filepath.Join(dir, target), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// inodeOf identifies a file of ns's committed generation: its device (a
// btrfs subvolume has its own; a snapshot keeps inode numbers) and inode.
func inodeOf(t *testing.T, st *state.Store, ns, file string) [2]uint64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(st.Root(), "ns", strings.ReplaceAll(ns, "/", "%2F"), "current", file))
	if err != nil {
		t.Fatal(err)
	}
	sys := fi.Sys().(*syscall.Stat_t)
	return [2]uint64{sys.Dev, sys.Ino}
}

func generation(t *testing.T, st *state.Store, ns string) int {
	t.Helper()
	infos, err := st.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		if i.Namespace == ns {
			return i.Generation
		}
	}
	return 0
}

// The namespace rules on real builds with a cache mount: CI's writes reach
// the next CI build; a session starts from CI's state, its writes reach its
// next build and never CI's state or builds; a failed build and a discard
// change nothing.
func TestWarmStateFollowsTheCacheNamespaces(t *testing.T) {
	e, st := stateEnv(t)
	ci, jpl := cache.Actor{Kind: cache.ActorCI}, cache.Actor{Kind: cache.ActorHuman, ID: "jpl"}

	res, held, err := warmBuild(t, e, ci, "", "ci-1", "")
	if err != nil || held != "" || res.State == nil || !res.State.Committed || res.State.Target != "ci/e2e" || res.State.GenerationOut != 1 {
		t.Fatalf("first CI build: held %q, state %+v, %v", held, res.State, err)
	}
	t.Logf("report: %s", res.State.Line())
	ciState := stateBytes(t, st, "ci/e2e")

	res, held, err = warmBuild(t, e, jpl, cache.Export, "jpl-1", "")
	if err != nil || held != "ci-1" || res.State.Namespace != "ci/e2e" || res.State.Target != "dev/jpl-e2e" || !res.State.Committed {
		t.Fatalf("session build: held %q, state %+v, %v", held, res.State, err)
	}
	if stateBytes(t, st, "ci/e2e") != ciState {
		t.Fatal("the session's build changed ci/e2e's bytes")
	}
	if _, held, err = warmBuild(t, e, jpl, cache.Export, "jpl-2", ""); err != nil || held != "ci-1 jpl-1" {
		t.Fatalf("the session's next build held %q (want its own write), %v", held, err)
	}
	// The same build again: every step cached, nothing committed, the
	// generation stays.
	gen := generation(t, st, "dev/jpl-e2e")
	dir := project(t, cacheMountDockerfile, map[string]string{"stamp": "jpl-2\n"})
	req := e.request(dir)
	req.Actor, req.Cache.Disposition = jpl, cache.Export
	if res, err := e.p.Run(context.Background(), req); err != nil || res.State.Committed || generation(t, st, "dev/jpl-e2e") != gen || !strings.Contains(res.State.Note, "nothing to commit") {
		t.Fatalf("an all-cached build: state %+v, gen %d → %d, %v", res.State, gen, generation(t, st, "dev/jpl-e2e"), err)
	}
	res, held, err = warmBuild(t, e, ci, "", "ci-2", "")
	if err != nil || held != "ci-1" || res.State.GenerationIn != 1 || res.State.GenerationOut != 2 {
		t.Fatalf("CI after the session: held %q (want nothing of the session), state %+v, %v", held, res.State, err)
	}

	// A failed build commits nothing.
	ciState = stateBytes(t, st, "ci/e2e")
	res, _, err = warmBuild(t, e, ci, "", "ci-failed", "RUN exit 3\n")
	if err == nil || res.State.Committed || generation(t, st, "ci/e2e") != 2 || stateBytes(t, st, "ci/e2e") != ciState {
		t.Fatalf("failed build: state %+v, gen %d, %v", res.State, generation(t, st, "ci/e2e"), err)
	}
	t.Logf("report of the failure: %s", res.State.Line())
	// ci-2's commit left ci/e2e's gen 1 for later: the next build, this
	// one, removed it while it ran. Its report gives the size last measured
	// (gen 1's, by ci-2's build), marked as of that generation.
	if gens, _ := filepath.Glob(filepath.Join(st.Root(), "ns", "ci%2Fe2e", "gen-*")); len(gens) != 1 || res.State.BytesIn == 0 || res.State.BytesGeneration != 1 || !strings.Contains(res.State.Line(), "(≈") {
		t.Fatalf("after the next build: generations %v, state %+v", gens, res.State)
	}

	// A discarding session leaves every committed state as it was.
	devState := stateBytes(t, st, "dev/jpl-e2e")
	res, held, err = warmBuild(t, e, jpl, cache.Discard, "jpl-discarded", "")
	if err != nil || held != "ci-1 jpl-1 jpl-2" || res.State.Committed {
		t.Fatalf("discard: held %q, state %+v, %v", held, res.State, err)
	}
	if stateBytes(t, st, "dev/jpl-e2e") != devState || stateBytes(t, st, "ci/e2e") != ciState {
		t.Fatal("a discarding build changed a committed state")
	}
	if left, _ := os.ReadDir(filepath.Join(st.Root(), "work")); len(left) != 0 {
		t.Fatalf("clones left in the store: %v", left)
	}
}

// Two CI builds at once each work on their own clone: one generation per
// success, and the state opens cleanly for the next build.
func TestConcurrentBuildsCommitOneGenerationEach(t *testing.T) {
	e, st := stateEnv(t)
	ci := cache.Actor{Kind: cache.ActorCI}
	if _, _, err := warmBuild(t, e, ci, "", "seed", ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, stamp := range []string{"left", "right"} {
		wg.Go(func() { _, _, errs[i] = warmBuild(t, e, ci, "", stamp, "") })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if g := generation(t, st, "ci/e2e"); g != 3 {
		t.Fatalf("generation %d after three successes", g)
	}
	_, held, err := warmBuild(t, e, ci, "", "after", "")
	if err != nil || !(held == "seed left" || held == "seed right") {
		t.Fatalf("after the concurrent builds: held %q, %v", held, err)
	}
}

// A build secret used with RUN --mount=type=secret is in no committed
// state: every file of the store is searched.
func TestSecretsStayOutOfCommittedState(t *testing.T) {
	e, st := stateEnv(t)
	const secret = "st4te-s3cret-8d1e"
	t.Setenv("LIAN_TEST_STATE_SECRET", secret)
	sum := sha256.Sum256([]byte(secret))
	dir := project(t, "FROM base\nRUN --mount=type=secret,id=tok --mount=type=cache,target=/c sh -c 'sha256sum /run/secrets/tok | grep -q "+hex.EncodeToString(sum[:])+" && echo used > /c/used'\n", map[string]string{})
	req := e.request(dir)
	req.Build.Secrets = []buildkit.Secret{{ID: "tok", Env: "LIAN_TEST_STATE_SECRET"}}
	res, err := e.p.Run(context.Background(), req)
	if err != nil || res.State == nil || !res.State.Committed {
		t.Fatalf("build: %+v %v", res.State, err)
	}
	files := 0
	err = filepath.WalkDir(st.Root(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the secret is in %s", p)
		}
		return nil
	})
	if err != nil || files < 10 {
		t.Fatalf("searched %d files: %v", files, err)
	}
	if !slices.ContainsFunc(mustList(t, st), func(i state.Info) bool { return i.Namespace == "ci/e2e" }) {
		t.Fatal("nothing committed")
	}
}

func mustList(t *testing.T, st *state.Store) []state.Info {
	infos, err := st.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

// A multi-stage build whose every step is cached commits nothing, though
// its FROMs of registry images report themselves done, not cached: they
// resolve a reference and fetch nothing. The first build, which pulls
// the image, commits.
func TestUnchangedFromRegistryCommitsNothing(t *testing.T) {
	reg := testenv.StartRegistry(t)
	e := newEnv(t, nil, reg.Host)
	img := reg.Host + "/e2e/tools:1"
	e.pushImage(t, img, "FROM base\nRUN echo tool > /tool\n")
	st := testenv.StateStore(t, "btrfs", state.Options{})
	p, err := pipeline.New(pipeline.Config{Provider: e.prov, State: st})
	if err != nil {
		t.Fatal(err)
	}
	dir := project(t, "FROM "+img+" AS tools\nFROM "+img+"\nCOPY --from=tools /tool /tool2\nRUN cat /tool /tool2\n", map[string]string{})
	res, err := p.Run(context.Background(), e.request(dir))
	if err != nil || !res.State.Committed || res.StepsCached != 0 {
		t.Fatalf("first build (pulls the image): state %+v, %d/%d cached, %v", res.State, res.StepsCached, res.StepsTotal, err)
	}
	tree := inodeOf(t, st, "ci/e2e", "cache.db")
	res, err = p.Run(context.Background(), e.request(dir))
	if err != nil || res.State.Committed || !strings.Contains(res.State.Note, "nothing to commit") || generation(t, st, "ci/e2e") != 1 {
		t.Fatalf("the same build again: state %+v, %v", res.State, err)
	}
	// The build took gen 1's tree (state.Clone.Took) and gave it back.
	if got := inodeOf(t, st, "ci/e2e", "cache.db"); got != tree {
		t.Errorf("gen 1 is a copy now (cache.db device and inode %v, was %v): the build's tree was discarded, not given back", got, tree)
	}
	if res.StepsTotal != 3 || res.StepsCached != 2 {
		t.Errorf("steps %d/%d cached; want the FROM (one vertex for both) done, not cached", res.StepsCached, res.StepsTotal)
	}
}
