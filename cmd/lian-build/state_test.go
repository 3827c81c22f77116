package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lian-build/action/internal/state"
	"github.com/lian-build/action/internal/testenv"
)

// The state store through the CLI: a build commits generation 1 and says so
// in its report; SIGTERM mid-build and kill -9 mid-build (then `runners gc`
// and `state gc`) leave generation 1 as it was and no clone behind.
func TestStateStoreThroughTheCLI(t *testing.T) {
	testenv.Require(t)
	st := testenv.StateStore(t, "btrfs", state.Options{})
	image := strings.TrimSuffix(st.Root(), ".mnt")
	runners := filepath.Join(t.TempDir(), "runners")
	flags := []string{"--state-store", image, "--workspace", "app"}
	work := func() []os.DirEntry { e, _ := os.ReadDir(filepath.Join(st.Root(), "work")); return e }

	dir := ctxDir(t, "FROM base\nRUN --mount=type=cache,target=/c echo warm > /c/f\n")
	ok := lian(t, nil, append(append([]string{"build", "--state-dir", runners, "--build-context", baseFlag(t)}, flags...), dir)...)
	if ok.code != 0 || !strings.Contains(ok.stderr+ok.stdout, "state           no state yet (registry cache only) → committed ci/app gen 1") {
		t.Fatalf("first build (exit %d):\n%s%s", ok.code, ok.stdout, ok.stderr)
	}

	cmd := startSleeper(t, runners, flags...)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("the build survived SIGTERM")
	}
	if left := work(); len(left) != 0 {
		t.Fatalf("after SIGTERM: %v in the store's work/", left)
	}

	cmd = startSleeper(t, runners, flags...)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if len(work()) == 0 {
		t.Fatal("kill -9 left no clone: nothing for gc to do")
	}
	early := lian(t, nil, "state", "gc", "--state-store", image)
	if early.code != 0 || len(work()) == 0 {
		t.Fatalf("state gc removed a clone a runner still uses (exit %d): %s%s", early.code, early.stdout, early.stderr)
	}
	if gc := lian(t, nil, "runners", "gc", "--state-dir", runners); gc.code != 0 {
		t.Fatalf("runners gc: %s%s", gc.stdout, gc.stderr)
	}
	gc := lian(t, nil, "state", "gc", "--state-store", image)
	if gc.code != 0 || !strings.Contains(gc.stdout, "removed clone ") || len(work()) != 0 {
		t.Fatalf("state gc (exit %d): %s%s; left %v", gc.code, gc.stdout, gc.stderr, work())
	}
	ls := lian(t, nil, "state", "ls", "--state-store", image)
	if ls.code != 0 || !strings.Contains(ls.stdout, "ci/app") || !strings.Contains(ls.stdout, " 1 ") {
		t.Fatalf("state ls (exit %d):\n%s%s", ls.code, ls.stdout, ls.stderr)
	}
	testenv.AssertNoRunners(t, runners)
}
