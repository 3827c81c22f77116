package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/metrics"
	"github.com/lian-build/action/internal/pipeline"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Golden tests of `spec check` and `sizing explain`, one per sizing source and per kind of bad spec.
func TestGolden(t *testing.T) {
	t.Setenv("LIAN_NICKEL", "") // the built-in evaluator: the goldens are its messages
	t.Setenv("PATH", "/nonexistent")
	metricsDir := t.TempDir()
	t.Setenv("LIAN_METRICS_DIR", metricsDir)
	rec := metrics.Recorder{Store: metrics.FileStore{Dir: metricsDir}}
	for _, ws := range []string{"p95-approved", "p95-suggestion"} {
		for i, u := range []pipeline.Usage{{Samples: 9, CPUP95: 3.1, MemP95Bytes: 9 << 30}, {Samples: 9, CPUP95: 5.2, MemP95Bytes: 11 << 30}, {Samples: 9, CPUP95: 4, MemP95Bytes: 10 << 30}} {
			if err := rec.Record(context.Background(), ws, u, pipeline.Result{BuildID: fmt.Sprint(i), Outcome: pipeline.OutcomeSuccess}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rec.SetApproved(context.Background(), "p95-approved", true); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"explain-override", []string{"sizing", "explain", "--runner-type", "cax41", "testdata/specs/override"}, 0},
		{"explain-spec-runner-type", []string{"sizing", "explain", "testdata/specs/spec-runner-type"}, 0},
		{"explain-spec-cpu", []string{"sizing", "explain", "testdata/specs/spec-cpu"}, 0},
		{"explain-p95-approved", []string{"sizing", "explain", "--workspace", "p95-approved", "testdata/specs/default-go"}, 0},
		{"explain-p95-suggestion", []string{"sizing", "explain", "--workspace", "p95-suggestion", "testdata/specs/default-go"}, 0},
		{"explain-default-go", []string{"sizing", "explain", "testdata/specs/default-go"}, 0},
		{"explain-hcloud-arm", []string{"sizing", "explain", "--provider", "hcloud", "--runner-type", "cax31", "testdata/specs/default-go"}, 0},
		{"explain-hcloud-x86", []string{"sizing", "explain", "--provider", "hcloud", "--platform", "linux/amd64", "testdata/specs/default-go"}, 0},
		{"explain-bad-tier", []string{"sizing", "explain", "testdata/specs/bad-tier"}, 2},
		{"check-spec", []string{"spec", "check", "testdata/specs/spec-cpu"}, 0},
		{"check-directives", []string{"spec", "check", "testdata/specs/directives.ncl"}, 0},
		{"check-bad-tier", []string{"spec", "check", "testdata/specs/bad-tier"}, 2},
		{"check-typo", []string{"spec", "check", "testdata/specs/typo"}, 2},
		{"check-wrong-type", []string{"spec", "check", "testdata/specs/wrong-type"}, 2},
		{"check-too-big", []string{"spec", "check", "testdata/specs/too-big"}, 2},
		{"check-not-subset", []string{"spec", "check", "testdata/specs/not-subset"}, 2},
		{"check-missing", []string{"spec", "check", "testdata/specs/nope.ncl"}, 2},
	}
	machineNote := regexp.MustCompile(` — more than this machine has \([^)]*\): the build gets at most that`)
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), tt.args, &out, &errb)
			got := strings.ReplaceAll(out.String()+errb.String(), abs, "<testdata>")
			// What this machine lacks for a tier depends on the machine.
			got = machineNote.ReplaceAllString(got, "")
			if code != tt.code {
				t.Errorf("exit code %d, want %d\n%s", code, tt.code, got)
			}
			golden := filepath.Join("testdata", "golden", tt.name+".txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/cli -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}
