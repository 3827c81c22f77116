package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/spf13/cobra"
)

// runnersCommand is `lian-build runners ls|gc|image`.
func runnersCommand() *cobra.Command {
	c := &cobra.Command{Use: "runners", Short: "list runners, remove orphaned ones, make the docker runner image"}
	asGroup(c)
	for _, sub := range []struct {
		name, short string
		run         func(ctx context.Context, prov compute.Provider, stdout, stderr io.Writer) error
	}{
		{"ls", "list the provider's runners (a pool's servers marked)", runnersLs},
		{"gc", "remove runners whose owner died or lease expired", runnersGC},
	} {
		s := newSettings()
		cmd := &cobra.Command{Use: sub.name, Short: sub.short, Args: noArgs, RunE: func(c *cobra.Command, _ []string) error {
			prov, err := s.OpenProvider()
			if err != nil {
				return err
			}
			return sub.run(c.Context(), prov, c.OutOrStdout(), c.ErrOrStderr())
		}}
		registerProvider(cmd, s)
		c.AddCommand(cmd)
	}
	c.AddCommand(runnersImageCommand())
	return c
}

func runnersLs(ctx context.Context, prov compute.Provider, stdout, stderr io.Writer) error {
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
}

func runnersGC(ctx context.Context, prov compute.Provider, stdout, _ io.Writer) error {
	removed, err := prov.GC(ctx)
	for _, r := range removed {
		fmt.Fprintf(stdout, "removed runner %s: %s (%s)\n", r.ID, r.Server, r.Why)
	}
	if err == nil && len(removed) == 0 {
		fmt.Fprintln(stdout, "no orphaned runners")
	}
	return err
}
