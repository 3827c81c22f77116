package remote_test

import (
	"os/exec"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/testenv"
)

// The program a runner machine starts buildkitd through, run here by the
// real python3: what it execs is under the filter (seccomp mode 2), and
// fsync of a pipe succeeds there, where it fails otherwise.
func TestNoSyncProgramFiltersWhatItExecs(t *testing.T) {
	testenv.RequireTools(t, "python3")
	// fsync of a pipe fails with EINVAL, unless the call never runs.
	probe := `grep '^Seccomp:' /proc/self/status; python3 -c 'import os; r, w = os.pipe(); os.fsync(r); print("fsync ok")' 2>&1 | tail -1`
	plain, _ := exec.Command("sh", "-c", probe).CombinedOutput()
	if !strings.Contains(string(plain), "Invalid argument") {
		t.Fatalf("without the program: %q, want fsync of a pipe to fail", plain)
	}
	out, err := exec.Command("python3", "-c", remote.NoSyncProgram(), "/bin/sh", "-c", probe).CombinedOutput()
	if err != nil || strings.Join(strings.Fields(string(out)), " ") != "Seccomp: 2 fsync ok" {
		t.Fatalf("through the program: %q %v, want Seccomp: 2 and fsync ok", out, err)
	}
}

// The user-data is valid YAML and writes the program where the start line
// looks for it; the image's boot script writes it too.
func TestCloudInitWritesTheNoSyncProgram(t *testing.T) {
	var cfg struct {
		WriteFiles []struct{ Path, Content string } `yaml:"write_files"`
		RunCmd     []string                         `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal([]byte(remote.CloudInit("/run/buildkit/buildkitd.sock", nil, remote.Software{})), &cfg); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range cfg.WriteFiles {
		found = found || f.Path == remote.NoSyncPath && f.Content == remote.NoSyncProgram()
	}
	if !found {
		t.Errorf("user-data does not write %s with the program: %+v", remote.NoSyncPath, cfg.WriteFiles)
	}
	if start := cfg.RunCmd[len(cfg.RunCmd)-1]; !strings.Contains(start, "python3 "+remote.NoSyncPath) {
		t.Errorf("buildkitd's start does not go through the program: %s", start)
	}
	if boot := remote.BootScript("/run/buildkit/buildkitd.sock"); !strings.Contains(boot, remote.NoSyncProgram()+"LIAN_NOSYNC\n") {
		t.Errorf("the image's boot script does not write the program:\n%s", boot)
	}
}
