package githubapp

import "unicode/utf8"

// GitHub's limits on a check run.
const (
	MaxText        = 65535 // characters of output.summary and output.text
	MaxAnnotations = 50    // per request
	MaxActions     = 3
	MaxActionID    = 20 // characters of an action identifier
)

// Truncate cuts s to at most n characters, marking the cut.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	const mark = "\n… (truncated)"
	r := []rune(s)
	return string(r[:n-utf8.RuneCountInString(mark)]) + mark
}

// TruncateHead keeps the end of s.
func TruncateHead(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	const mark = "(truncated) …\n"
	r := []rune(s)
	return mark + string(r[len(r)-(n-utf8.RuneCountInString(mark)):])
}
