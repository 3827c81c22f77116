package cli

import "github.com/lian-build/action/internal/frontdoor"

// isInputError reports errors caused by what the user gave, not by the build.
func isInputError(err error) bool { return frontdoor.IsInputError(err) }
