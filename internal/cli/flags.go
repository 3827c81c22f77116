package cli

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/suggest"
)

// UsageError is a command line that cannot be run; exit code 2.
type UsageError struct {
	Msg string
	Err error
}

func (e *UsageError) Error() string { return e.Msg }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErr(format string, a ...any) error { return &UsageError{Msg: fmt.Sprintf(format, a...)} }

// asGroup makes c a command of commands: without one it is a usage error
// naming them, and an unknown one is refused with the nearest name.
func asGroup(c *cobra.Command) {
	// A subcommand's flags after a mistyped subcommand are not the error.
	c.FParseErrWhitelist.UnknownFlags = true
	c.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %s (%s)", args[0], c.CommandPath(), strings.Join(commandNames(c), ", "))
		if best, ok := suggest.Nearest(args[0], commandNames(c)); ok {
			msg += "; did you mean " + best + "?"
		}
		return &UsageError{Msg: msg}
	}
	c.RunE = func(c *cobra.Command, _ []string) error {
		fmt.Fprint(c.ErrOrStderr(), c.UsageString())
		return usageErr("%s: a command is needed: %s", c.CommandPath(), strings.Join(commandNames(c), "|"))
	}
}

// commandNames are c's subcommands, in the order they were added.
func commandNames(c *cobra.Command) []string {
	var out []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			out = append(out, s.Name())
		}
	}
	return out
}

// noArgs refuses any positional argument.
var noArgs = args(0, 0, "no arguments")

// args checks a command's positional arguments: from min to max (-1: any).
func args(min, max int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			return usageErr("%s takes %s, got %d argument(s) (%s --help)", c.CommandPath(), what, len(args), c.CommandPath())
		}
		return nil
	}
}

// dirs completes a directory argument.
func dirs(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

// registerSettings adds the table's flags (only those named in only, when
// not nil), their environment variables read from this process's, and
// completes the flags whose settings have fixed choices.
func registerSettings(c *cobra.Command, table []frontdoor.Setting, s *frontdoor.Settings, only []string) {
	fs := c.Flags()
	fs.SortFlags = false
	frontdoor.RegisterFlags(fs, table, s, only, os.Getenv)
	fs.VisitAll(func(f *pflag.Flag) {
		choices := f.Annotations[frontdoor.ChoicesAnnotation]
		if _, done := c.GetFlagCompletionFunc(f.Name); len(choices) == 0 || done {
			return
		}
		_ = c.RegisterFlagCompletionFunc(f.Name, func(_ *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
			var out []string
			for _, ch := range choices {
				if strings.HasPrefix(ch, prefix) {
					out = append(out, ch)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		})
	})
}

// registerProvider adds the compute provider flags.
func registerProvider(c *cobra.Command, s *frontdoor.Settings) {
	registerSettings(c, frontdoor.SettingsTable(), s, frontdoor.ProviderSettings())
}

// registerHistory adds the P95 history flags: JetStream with --nats-url, files otherwise.
func registerHistory(c *cobra.Command, s *frontdoor.Settings) {
	registerSettings(c, frontdoor.SettingsTable(), s, []string{"metrics-dir", "nats-url"})
}

// newSettings are settings that name themselves as the CLI's flags.
func newSettings() *frontdoor.Settings {
	return &frontdoor.Settings{Names: cliNames(frontdoor.SettingsTable())}
}

// given are the settings whose flags the command line set.
func given(fs *pflag.FlagSet, table []frontdoor.Setting) map[string]bool {
	out := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) {
		if i := slices.IndexFunc(table, func(st frontdoor.Setting) bool { return st.Flag == f.Name }); i >= 0 {
			out[table[i].Name] = true
		}
	})
	return out
}
