package buildkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// DockerfileError is a Dockerfile that cannot be parsed, with its position.
type DockerfileError struct {
	File string
	Line int
	Msg  string
}

func (e *DockerfileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// CheckDockerfile parses a Dockerfile locally, so that a syntax error is
// reported with its line before any runner is spawned.
func CheckDockerfile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return inputErr("--file", path, "cannot read Dockerfile: %v", errors.Unwrap(err))
	}
	// A custom frontend (# syntax=…) has its own grammar; leave it to BuildKit.
	if ref, _, _, ok := parser.DetectSyntax(b); ok && ref != "" {
		return nil
	}
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		return &DockerfileError{File: path, Line: lineOf(err), Msg: err.Error()}
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return &DockerfileError{File: path, Line: lineOf(err), Msg: err.Error()}
	}
	if len(stages) == 0 {
		return &DockerfileError{File: path, Msg: "no FROM instruction"}
	}
	return nil
}

func lineOf(err error) int {
	var le *parser.LocationError
	if errors.As(err, &le) {
		for _, loc := range le.Locations {
			if len(loc) > 0 {
				return loc[0].Start.Line
			}
		}
	}
	return 0
}

// dockerfilePath resolves the Dockerfile of a build like docker does: -f
// relative to the working directory, default Dockerfile in the context.
func dockerfilePath(contextDir, file string) string {
	if file == "" {
		return filepath.Join(contextDir, "Dockerfile")
	}
	return file
}
