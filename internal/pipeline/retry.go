package pipeline

// MaxOOMRetries is how many times a build that ran out of memory is retried on
// the next tier (docs/architecture.md: exactly once).
const MaxOOMRetries = 1

// shouldRetryOnOOM decides whether a failed attempt gets another runner: only
// an OOM, only while retries remain, and only when a larger tier exists.
func shouldRetryOnOOM(oom bool, retriesDone int, hasNextTier bool) bool {
	return oom && retriesDone < MaxOOMRetries && hasNextTier
}
