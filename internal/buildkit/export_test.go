package buildkit

import "testing"

// SplitContextsAt makes a part's worth of a streamed context n bytes until
// the test ends.
func SplitContextsAt(t testing.TB, n int64) {
	old := partBytes
	partBytes = n
	t.Cleanup(func() { partBytes = old })
}
