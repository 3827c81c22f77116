package frontdoor

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lian-build/action/internal/pipeline"
)

// ResultTable is the Markdown table of a finished build that GitHub shows: the
// Action's job summary and the gateway's check run render the same rows (tier
// and why, attempts, OOM retries, cache hits, duration, digest, tags, usage,
// runner, actor, failed step). runner names the compute provider ("" leaves
// the row out). Cells are escaped for the table; the caller adds headings,
// log tails and length limits of its surface.
func ResultTable(r pipeline.Result, runner string) string {
	var b strings.Builder
	b.WriteString("| | |\n|---|---|\n")
	row := func(k, v string) {
		v = strings.ReplaceAll(strings.ReplaceAll(v, "|", "\\|"), "\n", " ")
		fmt.Fprintf(&b, "| %s | %s |\n", k, v)
	}
	if r.Tier != "" {
		row("Tier", fmt.Sprintf("`%s` (%s: %s)", r.Tier, r.SizingSource, r.SizingReason))
	}
	if r.SizingSuggestion != "" {
		row("P95 suggestion", r.SizingSuggestion)
	}
	if len(r.Attempts) > 0 {
		var att []string
		for _, a := range r.Attempts {
			oom := ""
			if a.OOM {
				oom = ", OOM"
			}
			att = append(att, fmt.Sprintf("%d. `%s` %s in %s%s", a.Number, a.Tier, a.Outcome, FmtDur(a.DurationMS), oom))
		}
		row("Attempts", strings.Join(att, " → "))
		row("OOM retries", strconv.Itoa(r.OOMRetries))
		row("Cache hits", fmt.Sprintf("%d/%d steps cached", r.StepsCached, r.StepsTotal))
	}
	row("Duration", FmtDur(r.DurationMS))
	if r.Digest != "" {
		row("Digest", "`"+r.Digest+"`")
	}
	if len(r.Tags) > 0 {
		row("Tags", "`"+strings.Join(r.Tags, "`, `")+"`")
	}
	if u := r.Usage; u != nil {
		row("Usage", fmt.Sprintf("CPU p95 %.2f cores, memory p95 %s (peak %s), %d samples", u.CPUP95, FmtBytes(u.MemP95Bytes), FmtBytes(u.MemPeak), u.Samples))
	}
	if runner != "" {
		row("Runner", runner)
	}
	if r.Actor != "" {
		row("Actor", "`"+r.Actor+"`")
	}
	if f := r.Failure; f != nil && f.Step != "" {
		loc := ""
		if f.File != "" {
			loc = fmt.Sprintf(" (`%s:%d`)", f.File, f.Line)
		}
		row("Failed step", "`"+f.Step+"`"+loc)
	}
	return b.String()
}
