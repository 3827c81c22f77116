package cli

import (
	"flag"
	"fmt"
	"io"
)

// parseInterspersed parses flags that may come before or after positional
// arguments, as docker and buildx accept them.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// UsageError is a command line that cannot be run; exit code 2 (0 for
// -h/--help, whose usage the flag set has printed).
type UsageError struct {
	Msg string
	Err error
}

func (e *UsageError) Error() string { return e.Msg }
func (e *UsageError) Unwrap() error { return e.Err }

// flagErr is a flag parsing error as a UsageError.
func flagErr(err error) error { return &UsageError{Msg: err.Error(), Err: err} }

func usageErr(format string, a ...any) error { return &UsageError{Msg: fmt.Sprintf(format, a...)} }

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
