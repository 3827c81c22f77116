package action

import (
	"fmt"
	"os"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/sethvargo/go-githubactions"
)

// fileCommands are the runner's files the action writes to, by variable.
var fileCommands = []string{"GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_STATE"}

// checkFileCommands makes sure, before any runner exists, that the files the
// action writes its outputs, summary and state to are set and writable
// (go-githubactions panics on a write that fails).
func checkFileCommands(a *githubactions.Action) error {
	for _, v := range fileCommands {
		p := a.Getenv(v)
		if p == "" {
			return &buildkit.InputError{Field: "$" + v, Msg: "is not set: lian-build-action runs as a step of a GitHub Actions job"}
		}
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return &buildkit.InputError{Field: "$" + v, Value: p, Msg: fmt.Sprintf("cannot be written: %v", unwrapPath(err))}
		}
		f.Close()
	}
	return nil
}

// fileCommand runs one write through go-githubactions and returns its panic
// (a file that became unwritable during the build) as an error naming the variable.
func fileCommand(variable string, write func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("$%s: %v", variable, r)
		}
	}()
	write()
	return nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
