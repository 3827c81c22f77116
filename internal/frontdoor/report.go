package frontdoor

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lian-build/action/internal/pipeline"
)

// WriteReport writes the human report of a build.
func WriteReport(w io.Writer, r pipeline.Result) {
	verb := map[pipeline.Outcome]string{
		pipeline.OutcomeSuccess: "succeeded", pipeline.OutcomeFailure: "failed", pipeline.OutcomeOOM: "ran out of memory",
		pipeline.OutcomeCanceled: "was canceled", pipeline.OutcomeTimeout: "timed out", pipeline.OutcomeError: "could not run",
	}[r.Outcome]
	fmt.Fprintf(w, "\nlian-build: build %s %s in %s\n", r.BuildID, verb, FmtDur(r.DurationMS))
	row := func(k, v string) { fmt.Fprintf(w, "  %-12s %s\n", k, v) }
	if r.Tier != "" {
		row("tier", fmt.Sprintf("%s (%s: %s)", r.Tier, r.SizingSource, r.SizingReason))
	}
	if r.SizingSuggestion != "" {
		row("suggestion", r.SizingSuggestion)
	}
	if len(r.Attempts) > 0 {
		var parts []string
		for _, a := range r.Attempts {
			parts = append(parts, fmt.Sprintf("#%d %s %s %s", a.Number, a.Tier, a.Outcome, FmtDur(a.DurationMS)))
		}
		row("attempts", strings.Join(parts, " → "))
		row("oom retries", fmt.Sprint(r.OOMRetries))
		row("steps", fmt.Sprintf("%d/%d cached", r.StepsCached, r.StepsTotal))
	}
	if r.Digest != "" {
		row("digest", r.Digest)
	}
	if len(r.Tags) > 0 {
		row("tags", strings.Join(r.Tags, ", "))
	}
	if r.Usage != nil {
		row("usage", fmt.Sprintf("cpu p95 %.2f cores, mem p95 %s (peak %s), %d samples", r.Usage.CPUP95, FmtBytes(r.Usage.MemP95Bytes), FmtBytes(r.Usage.MemPeak), r.Usage.Samples))
	}
	if f := r.Failure; f != nil {
		if f.Step != "" {
			loc := ""
			if f.File != "" {
				loc = fmt.Sprintf(" at %s:%d", f.File, f.Line)
			}
			row("failed step", f.Step+loc)
		}
		for _, l := range Tail(f.LogTail, 10) {
			fmt.Fprintf(w, "  | %s\n", l)
		}
	}
	if r.Error != "" {
		row("error", r.Error)
	}
}

// Tail is the last n lines.
func Tail(l []string, n int) []string {
	if len(l) > n {
		return l[len(l)-n:]
	}
	return l
}

// FmtDur formats milliseconds for people.
func FmtDur(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).Round(100 * time.Millisecond).String()
}

// FmtBytes formats a byte count for people.
func FmtBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", b>>10)
}
