package frontdoor

import (
	"errors"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/spec"
)

// Exit codes, the same for every front door.
const (
	ExitOK       = 0
	ExitFailed   = 1
	ExitUsage    = 2
	ExitOOM      = 3
	ExitTimeout  = 4
	ExitCanceled = 130
)

// IsInputError reports errors caused by what the user gave, not by the build.
func IsInputError(err error) bool {
	var ie *buildkit.InputError
	var de *buildkit.DockerfileError
	var te *sizing.UnknownTierError
	return errors.As(err, &ie) || errors.As(err, &de) || errors.As(err, &te) || spec.IsSpecError(err)
}

// ExitCode is the process exit code for the error a build ended with.
func ExitCode(err error) int {
	var oe *pipeline.OOMError
	var te *pipeline.TimeoutError
	switch {
	case err == nil:
		return ExitOK
	case IsInputError(err):
		return ExitUsage
	case errors.As(err, &oe):
		return ExitOOM
	case errors.As(err, &te):
		return ExitTimeout
	case errors.Is(err, pipeline.ErrCanceled):
		return ExitCanceled
	}
	return ExitFailed
}
