package lamina

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// shortDigest keeps a digest readable in a table.
func shortDigest(d string) string {
	if i := strings.Index(d, ":"); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// row is one result's cells.
func (r LayerResult) row() []string {
	steps := "—"
	if r.StepsTotal > 0 {
		steps = fmt.Sprintf("%d/%d", r.StepsCached, r.StepsTotal)
	}
	tier := r.Tier
	if tier == "" {
		tier = "—"
	}
	return []string{r.Name, string(r.Status), tier, steps, shortDigest(r.Digest), strings.Join(r.Verified, ", "), r.Why}
}

var summaryHeader = []string{"LAYER", "RESULT", "TIER", "CACHED", "DIGEST", "VERIFIED TOOLS", "WHY"}

// WriteSummary writes the per-layer summary for a terminal.
func WriteSummary(w io.Writer, results []LayerResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(summaryHeader, "\t"))
	for _, r := range results {
		fmt.Fprintln(tw, strings.Join(r.row(), "\t"))
	}
	return tw.Flush()
}

// Markdown is the summary as a Markdown table (a job summary).
func Markdown(results []LayerResult) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(summaryHeader, " | ") + " |\n|" + strings.Repeat("---|", len(summaryHeader)) + "\n")
	for _, r := range results {
		cells := r.row()
		for i, c := range cells {
			cells[i] = strings.NewReplacer("|", `\|`, "\n", " ").Replace(c)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}
