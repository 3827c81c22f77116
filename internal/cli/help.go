package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lian-build/action/internal/frontdoor"
)

// usage is every command's usage: its command line, its commands by group,
// and its flags by topic (the settings table's topics, a provider's flags
// under its name) — `--long, -s` on one line, as pflag prints them.
func usage(c *cobra.Command) error {
	fmt.Fprint(c.OutOrStderr(), usageText(c))
	return nil
}

func usageText(c *cobra.Command) string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	if c.Runnable() && !c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "  %s\n", c.UseLine())
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "  %s COMMAND\n", c.CommandPath())
	}
	if len(c.Aliases) > 0 {
		fmt.Fprintf(&b, "\nAliases:\n  %s\n", strings.Join(append([]string{c.Name()}, c.Aliases...), ", "))
	}
	if c.HasExample() {
		fmt.Fprintf(&b, "\nExamples:\n%s\n", c.Example)
	}
	writeCommands(&b, c)
	for _, sec := range flagSections(c.LocalFlags()) {
		fmt.Fprintf(&b, "\n%s:\n%s", sec.title, sec.flags.FlagUsagesWrapped(120))
	}
	if c.HasAvailableInheritedFlags() {
		fmt.Fprintf(&b, "\nGlobal flags:\n%s", c.InheritedFlags().FlagUsagesWrapped(120))
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "\nRun '%s COMMAND --help' for more about a command.\n", c.CommandPath())
	}
	return b.String()
}

// writeCommands lists c's commands under their groups' titles.
func writeCommands(b *strings.Builder, c *cobra.Command) {
	if !c.HasAvailableSubCommands() {
		return
	}
	width := 0
	for _, s := range c.Commands() {
		width = max(width, len(s.Name()))
	}
	titles := map[string]string{"": "Commands:"}
	ids := []string{""}
	for _, g := range c.Groups() {
		titles[g.ID] = g.Title
		ids = append(ids, g.ID)
	}
	for _, id := range ids {
		var lines []string
		for _, s := range c.Commands() {
			if s.GroupID == id && (s.IsAvailableCommand() || s.Name() == "help") {
				lines = append(lines, fmt.Sprintf("  %-*s  %s\n", width, s.Name(), s.Short))
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(b, "\n%s\n%s", titles[id], strings.Join(lines, ""))
		}
	}
}

// flagSection is one titled group of flags in help.
type flagSection struct {
	title string
	flags *pflag.FlagSet
}

// flagSections groups flags by their topic annotation: the command's own
// (no topic) first, then each topic in the order its first flag comes.
func flagSections(fs *pflag.FlagSet) []flagSection {
	var out []flagSection
	fs.SortFlags = false
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		title := "Flags"
		if t := f.Annotations[frontdoor.TopicAnnotation]; len(t) > 0 {
			title = t[0] + " flags"
		}
		i := slices.IndexFunc(out, func(s flagSection) bool { return s.title == title })
		if i < 0 {
			out = append(out, flagSection{title: title, flags: pflag.NewFlagSet(title, pflag.ContinueOnError)})
			i = len(out) - 1
		}
		out[i].flags.SortFlags = false
		out[i].flags.AddFlag(f)
	})
	// The command's own flags come before the settings' topics.
	slices.SortStableFunc(out, func(a, b flagSection) int {
		return boolRank(a.title != "Flags") - boolRank(b.title != "Flags")
	})
	return out
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
