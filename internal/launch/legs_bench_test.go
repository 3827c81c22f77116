package launch_test

import (
	"testing"
	"time"

	"github.com/lian-build/action/internal/testenv"
)

// BenchmarkTwoPlatformBuild: a two-platform build (a runner per
// architecture at once, then the index) against its slower leg and against
// the same two platforms built one after the other, in one run. Target:
// wall ≤ 1.1× the slower leg.
func BenchmarkTwoPlatformBuild(b *testing.B) {
	_, _, s := multiWorld(b, "FROM base\nRUN sleep 2 && uname -m > /arch.txt\n")
	s.BuildContexts = []string{"base=oci-layout://" + testenv.MultiArchBase(b)}
	s.NoCache = true
	var wall, slower, sequential time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, _ := build(b, s)
		wall += time.Since(start)
		var slow int64
		for _, l := range res.Legs {
			slow = max(slow, l.Result.DurationMS)
		}
		slower += time.Duration(slow) * time.Millisecond
		start = time.Now()
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			one := s
			one.Platforms = []string{p}
			build(b, one)
		}
		sequential += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(wall.Seconds()/n, "wall-s")
	b.ReportMetric(slower.Seconds()/n, "slower-leg-s")
	b.ReportMetric(sequential.Seconds()/n, "one-after-the-other-s")
	b.ReportMetric(wall.Seconds()/slower.Seconds(), "wall/slower-leg")
}
