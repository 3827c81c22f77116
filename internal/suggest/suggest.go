// Package suggest finds the known name closest to a mistyped one, for error
// messages like `unknown field (did you mean "runner_type"?)`.
package suggest

// Nearest returns the known name closest to name by edit distance, when it is
// close enough to be a typo: at most max(2, len(name)/3) edits.
func Nearest(name string, known []string) (string, bool) {
	best, bestD := "", 1<<30
	for _, k := range known {
		if d := Distance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best, best != "" && bestD <= max(2, len(name)/3)
}

// Distance is the Levenshtein distance of a and b (bytes).
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
