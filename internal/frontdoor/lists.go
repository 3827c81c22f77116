package frontdoor

import (
	"encoding/csv"
	"strings"
)

// SplitList reads a multi-value input as docker/build-push-action does: one
// item per line, or comma-separated (double quotes protect commas, as in
// "type=registry,ref=r"). Blank lines and surrounding space are dropped.
func SplitList(s string) ([]string, error) {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		r := csv.NewReader(strings.NewReader(line))
		r.TrimLeadingSpace = true
		r.LazyQuotes = true
		fields, err := r.Read()
		if err != nil {
			return nil, err
		}
		for _, f := range fields {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// SplitLines reads a list whose items may contain commas (secrets, build-args
// values): one item per line only.
func SplitLines(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}
