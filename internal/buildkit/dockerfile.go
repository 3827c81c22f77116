package buildkit

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/lian-build/action/internal/safefile"

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

// CheckDockerfile parses a Dockerfile locally, so that a syntax error, or a
// --target that names no stage, is reported before any runner is spawned.
func CheckDockerfile(path, target string) error {
	b, err := readDockerfile(path)
	if err != nil {
		return err
	}
	return checkDockerfile(path, b, target)
}

// readDockerfile reads the Dockerfile at path: a regular file, bounded.
func readDockerfile(path string) ([]byte, error) {
	b, err := safefile.Read(path, maxDockerfile)
	if err != nil {
		return nil, inputErr("file", path, "cannot read Dockerfile: %v", pathErr(err))
	}
	return b, nil
}

// checkDockerfile is CheckDockerfile of the Dockerfile b read from path.
func checkDockerfile(path string, b []byte, target string) error {
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
	if target == "" {
		return nil
	}
	var names []string
	for _, st := range stages {
		if strings.EqualFold(st.Name, target) {
			return nil
		}
		if st.Name != "" {
			names = append(names, st.Name)
		}
	}
	if len(names) == 0 {
		return inputErr("target", target, "%s has no named stage (FROM … AS NAME)", path)
	}
	return inputErr("target", target, "no such stage in %s (stages: %s)", path, strings.Join(names, ", "))
}

// maxDockerfile bounds a Dockerfile read for checking.
const maxDockerfile = 4 << 20

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
