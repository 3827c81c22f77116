package cli

import (
	"errors"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/spec"
)

// isInputError reports errors caused by what the user gave, not by the build.
func isInputError(err error) bool {
	var ie *buildkit.InputError
	var de *buildkit.DockerfileError
	var te *sizing.UnknownTierError
	return errors.As(err, &ie) || errors.As(err, &de) || errors.As(err, &te) || spec.IsSpecError(err)
}
