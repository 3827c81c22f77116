package nosync_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lian-build/action/internal/nosync"
	"github.com/lian-build/action/internal/testenv"
)

const syncChildEnv = "LIAN_TEST_SYNC_CHILD"

// TestSyncChild is the child of TestStartWithoutSyncs: it reports what each
// call returned on a descriptor that does not exist.
func TestSyncChild(t *testing.T) {
	if os.Getenv(syncChildEnv) == "" {
		t.Skip("run by TestStartWithoutSyncs")
	}
	res := map[string]string{}
	str := func(err error) string {
		if err == nil {
			return "ok"
		}
		return err.Error()
	}
	res["fsync"] = str(unix.Fsync(-1))
	res["fdatasync"] = str(unix.Fdatasync(-1))
	res["syncfs"] = str(unix.Syncfs(-1))
	res["sync_file_range"] = str(unix.SyncFileRange(-1, 0, 0, 0))
	_, err := unix.Write(-1, []byte("x"))
	res["write"] = str(err)
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

func syncResults(t *testing.T, start func(*exec.Cmd) error) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSyncChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), syncChildEnv+"=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	res := map[string]string{}
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("child said %q: %v", out.String(), err)
	}
	return res
}

// The filter makes the sync calls succeed without running (on a descriptor
// that does not exist, where they fail otherwise), leaves every other call
// alone, and stays off the parent's threads.
func TestStartWithoutSyncs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a seccomp filter without no_new_privs needs CAP_SYS_ADMIN")
	}
	plain := syncResults(t, (*exec.Cmd).Start)
	for call, got := range plain {
		if !strings.Contains(got, "bad file descriptor") {
			t.Errorf("without the filter, %s(-1) = %s, want EBADF", call, got)
		}
	}
	filtered := syncResults(t, func(c *exec.Cmd) error {
		ferr, err := nosync.Start(c)
		return errors.Join(ferr, err)
	})
	for _, call := range []string{"fsync", "fdatasync", "syncfs", "sync_file_range"} {
		if filtered[call] != "ok" {
			t.Errorf("with the filter, %s(-1) = %q, want ok (no-op)", call, filtered[call])
		}
	}
	if !strings.Contains(filtered["write"], "bad file descriptor") {
		t.Errorf("with the filter, write(-1) = %q, want EBADF: only sync calls are filtered", filtered["write"])
	}
	if err := unix.Fsync(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("the parent's fsync(-1) = %v after starting a child without syncs, want EBADF", err)
	}
	assertNoThreadFiltered(t)
}

// assertNoThreadFiltered waits for the thread that forked the child to end:
// it ends with its goroutine, and no other may ever carry the filter.
func assertNoThreadFiltered(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		filtered := filteredThreads(t)
		if len(filtered) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads of the parent still under a seccomp filter: %v", filtered)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func filteredThreads(t *testing.T) []string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range tasks {
		if testenv.SeccompMode(p) != "0" {
			out = append(out, p)
		}
	}
	return out
}

// The table's calls are this machine's (the constants of its GOARCH), and
// the program a runner script hands to prctl is the same filter's bytes.
func TestFilterOfThisMachine(t *testing.T) {
	uname := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	f, err := nosync.Filter(uname)
	if err != nil {
		t.Fatal(err)
	}
	var calls []uint32
	for _, i := range f {
		if i.Code == unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K && i.Jt > 0 {
			calls = append(calls, i.K)
		}
	}
	want := []uint32{unix.SYS_FSYNC, unix.SYS_FDATASYNC, unix.SYS_SYNC_FILE_RANGE, unix.SYS_SYNCFS, unix.SYS_SYNC}
	if len(calls) != len(want) {
		t.Fatalf("filtered calls %v, want %v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("filtered calls %v, want %v", calls, want)
		}
	}
	h, err := nosync.Hex(uname)
	if err != nil || len(h) != 16*len(f) {
		t.Fatalf("Hex: %d hex digits for %d instructions, %v", len(h), len(f), err)
	}
	if _, err := nosync.Filter("mips"); err == nil {
		t.Error("a machine without a table got a filter")
	}
}
