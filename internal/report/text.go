// Package report renders a build's result the same way on every surface:
// text for the CLI and the Woodpecker log (Write), a Markdown table for the
// Action's job summary and the Check Run (Markdown), from one list of facts.
package report

import (
	"fmt"
	"io"
	"time"

	"github.com/lian-build/action/internal/pipeline"
)

// Write writes the human report of a build: a headline, the facts
// every report shows (Markdown renders the same for GitHub), the failing
// step's log tail and the error.
func Write(w io.Writer, r pipeline.Result) {
	verb := map[pipeline.Outcome]string{
		pipeline.OutcomeSuccess: "succeeded", pipeline.OutcomeFailure: "failed", pipeline.OutcomeOOM: "ran out of memory",
		pipeline.OutcomeCanceled: "was canceled", pipeline.OutcomeTimeout: "timed out", pipeline.OutcomeError: "could not run",
	}[r.Outcome]
	fmt.Fprintf(w, "\nlian-build: build %s %s\n", r.BuildID, verb)
	for _, f := range facts(r) {
		fmt.Fprintf(w, "  %-15s %s\n", f.key, f.value)
	}
	if f := r.Failure; f != nil {
		for _, l := range Tail(f.LogTail, 10) {
			fmt.Fprintf(w, "  | %s\n", l)
		}
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  %-15s %s\n", "error", r.Error)
	}
}

// Tail is the last n lines.
func Tail(l []string, n int) []string {
	if len(l) > n {
		return l[len(l)-n:]
	}
	return l
}

// Duration formats milliseconds for people.
func Duration(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).Round(100 * time.Millisecond).String()
}

// Bytes formats a byte count for people.
func Bytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b > 0 && b < 1<<10:
		return fmt.Sprintf("%d B", b)
	}
	return fmt.Sprintf("%d KiB", b>>10)
}
