package buildkit

import (
	"errors"
	"regexp"
	"strings"

	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Signals is what the pipeline knows about a failed step when deciding
// whether it ran out of memory.
type Signals struct {
	Err          error  // the build error
	ExitCode     int    // the failing process's exit code, -1 when unknown
	StepError    string // the failing vertex's error text
	LogTail      []string
	OOMKillDelta uint64 // rise of the runner's oom-kill counter during the build
}

var oomText = regexp.MustCompile(`(?i)\b(out of memory|oom[- ]?kill(ed)?|oom)\b|\bKilled\b|signal: killed|exit code: 137`)

// IsOOM decides whether a failure was a step killed for memory (docs/architecture.md, step 5):
// exit code 137, gRPC ResourceExhausted, "OOM"/"Killed" in the step error, or
// the runner's own oom-kill counter rising.
func IsOOM(s Signals) bool {
	if s.Err == nil {
		return false
	}
	if s.OOMKillDelta > 0 || s.ExitCode == 137 {
		return true
	}
	for e := s.Err; e != nil; e = errors.Unwrap(e) {
		if st, ok := status.FromError(e); ok && st.Code() == codes.ResourceExhausted {
			return true
		}
	}
	if oomText.MatchString(stepErrorTail(s.StepError)) {
		return true
	}
	// The kernel's or the shell's own words at the end of the step's output.
	for i := len(s.LogTail) - 1; i >= 0 && i >= len(s.LogTail)-3; i-- {
		if l := strings.TrimSpace(s.LogTail[i]); l == "Killed" || strings.Contains(strings.ToLower(l), "out of memory") {
			return true
		}
	}
	return false
}

// ExitCode digs the failing process's exit code out of a BuildKit error.
func ExitCode(err error) int {
	var ee *gwpb.ExitError
	if errors.As(err, &ee) {
		return int(ee.ExitCode)
	}
	return -1
}

// stepErrorTail drops the quoted command from BuildKit's
// `process "/bin/sh -c …" did not complete successfully: exit code: N`, so a
// command that merely mentions OOM is not taken for one.
func stepErrorTail(msg string) string {
	const marker = "did not complete successfully:"
	if i := strings.LastIndex(msg, marker); i >= 0 {
		return msg[i+len(marker):]
	}
	return msg
}
