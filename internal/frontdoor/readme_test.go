package frontdoor

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/report"
	"github.com/lian-build/action/internal/testenv"
)

// readmeReport is the build the README's sample report shows: an OOM on
// cax11, the retry on cax21, 14 of 18 steps from the cache.
func readmeReport() pipeline.Result {
	return pipeline.Result{
		BuildID: "b5f0c2e1a9d3e", Outcome: pipeline.OutcomeSuccess, Tier: "cax21", SizingSource: "default",
		SizingReason: "generic default 2 CPU / 4 GB (no language marker)",
		Attempts: []pipeline.Attempt{
			{Number: 1, Tier: "cax11", Outcome: pipeline.OutcomeOOM, DurationMS: 2300, OOM: true},
			{Number: 2, Tier: "cax21", Outcome: pipeline.OutcomeSuccess, DurationMS: 4900},
		},
		OOMRetries: 1, StepsTotal: 18, StepsCached: 14, DurationMS: 7400,
		Digest: "sha256:6551c3ca985963ef7c28b10784bf43490b94db156518bf308997b35b4ac513f4",
		Tags:   []string{"registry.example.com/team/app:latest"}, Provider: "local", Actor: "ci",
	}
}

// The README's settings table is the settings table's.
func TestREADMESettingsTable(t *testing.T) {
	testenv.CheckREADMEBlock(t, "<!-- settings:begin -->\n", "<!-- settings:end -->", MarkdownTable(SettingsTable()))
}

// The README's sample report is what report.Write prints (LIAN_UPDATE_README=1
// rewrites it).
func TestREADMEReportSample(t *testing.T) {
	var b bytes.Buffer
	report.Write(&b, readmeReport())
	const intro = "`oom_retries`, `steps_total`, `steps_cached`, `digest`, `duration_ms`, `outcome`, …):\n\n```\n"
	testenv.CheckREADMEBlock(t, intro, "```\n", strings.TrimLeft(b.String(), "\n"))
}
