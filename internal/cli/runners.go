package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/lian-build/action/internal/frontdoor"
)

func runRunners(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("usage: lian-build runners ls|gc|image [flags]")
	}
	if args[0] == "image" {
		return runnersImage(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("lian-build runners "+args[0], stderr)
	s := frontdoor.Settings{Names: cliNames(frontdoor.SettingsTable())}
	registerProvider(fs, &s)
	if _, err := parseInterspersed(fs, args[1:]); err != nil {
		return flagErr(err)
	}
	prov, err := s.OpenProvider()
	if err != nil {
		return err
	}
	switch args[0] {
	case "ls":
		if note := prov.Note(); note != "" {
			fmt.Fprintln(stderr, "note:", note)
		}
		infos, err := prov.List(ctx)
		if err != nil {
			return err
		}
		if len(infos) == 0 {
			fmt.Fprintln(stdout, "no runners")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPROVIDER\tTIER\tSERVER\tLOCATION\tAGE\tSTATE")
		for _, i := range infos {
			state := "running"
			switch {
			case i.Orphan:
				state = "orphan: " + i.Why
			case i.Pool != "":
				state = "kept by pool " + i.Pool + " (lian-build pool ls)"
			}
			age := "?"
			if !i.Created.IsZero() {
				age = time.Since(i.Created).Round(time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, i.Provider, i.Tier, i.Server, i.Location, age, state)
		}
		return tw.Flush()
	case "gc":
		removed, err := prov.GC(ctx)
		for _, r := range removed {
			fmt.Fprintf(stdout, "removed runner %s: %s (%s)\n", r.ID, r.Server, r.Why)
		}
		if err == nil && len(removed) == 0 {
			fmt.Fprintln(stdout, "no orphaned runners")
		}
		return err
	}
	return usageErr("runners: unknown command %q (ls, gc)", args[0])
}
