package buildkit

import (
	"errors"
	"fmt"
	"testing"

	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestIsOOM(t *testing.T) {
	fail := errors.New("failed")
	tests := []struct {
		name string
		s    Signals
		want bool
	}{
		{"no error", Signals{ExitCode: 137}, false},
		{"exit 137", Signals{Err: fail, ExitCode: 137}, true},
		{"exit 137 in the message", Signals{Err: fail, ExitCode: -1, StepError: `process "/bin/sh -c make" did not complete successfully: exit code: 137`}, true},
		{"grpc resource exhausted", Signals{Err: fmt.Errorf("solve: %w", status.Error(codes.ResourceExhausted, "no memory")), ExitCode: -1}, true},
		{"cgroup oom-kill counter rose", Signals{Err: fail, ExitCode: 2, OOMKillDelta: 1}, true},
		{"Killed at the end of the log", Signals{Err: fail, ExitCode: 1, LogTail: []string{"compiling", "Killed"}}, true},
		{"kernel words in the step error", Signals{Err: fail, ExitCode: -1, StepError: "runc: container killed: out of memory"}, true},
		{"plain exit 3", Signals{Err: fail, ExitCode: 3, StepError: `process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`}, false},
		{"command merely mentions OOM", Signals{Err: fail, ExitCode: 1, StepError: `process "/bin/sh -c ./test-oom-Killed.sh" did not complete successfully: exit code: 1`}, false},
		{"Killed long before the end", Signals{Err: fail, ExitCode: 1, LogTail: []string{"Killed", "a", "b", "c", "d"}}, false},
		{"syntax error", Signals{Err: fail, ExitCode: -1, StepError: "dockerfile parse error"}, false},
	}
	for _, tt := range tests {
		if got := IsOOM(tt.s); got != tt.want {
			t.Errorf("%s: IsOOM = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	if got := ExitCode(fmt.Errorf("wrapped: %w", &gwpb.ExitError{ExitCode: 137})); got != 137 {
		t.Errorf("ExitCode = %d", got)
	}
	if got := ExitCode(errors.New("x")); got != -1 {
		t.Errorf("ExitCode = %d", got)
	}
}
