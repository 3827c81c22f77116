package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/report"
	"github.com/lian-build/action/internal/state"
	"github.com/spf13/cobra"
)

// stateSettings are the flags of `lian-build state`.
var stateSettings = []string{"state-store", "state-store-size", "state-max"}

// stateCommand is `lian-build state ls|rm NAMESPACE…|gc|unmount`.
func stateCommand() *cobra.Command {
	c := &cobra.Command{Use: "state", Short: "warm runner state per cache namespace (--state-store PATH, or volumes)"}
	asGroup(c)
	for _, sub := range []struct {
		use, short string
		args       cobra.PositionalArgs
	}{
		{"ls", "list the committed namespaces, their generation, size and last writer", noArgs},
		{"rm NAMESPACE...", "remove namespaces' committed state", args(1, -1, "one or more NAMESPACEs")},
		{"gc", "remove what crashed builds left behind (clones, half-made generations)", noArgs},
		{"unmount", "unmount an image store lian-build mounted", noArgs},
	} {
		s := newSettings()
		cmd := &cobra.Command{Use: sub.use, Short: sub.short, Args: sub.args, RunE: func(c *cobra.Command, pos []string) error {
			return runState(c.Context(), c.Name(), pos, *s, c.OutOrStdout(), c.ErrOrStderr())
		}}
		registerSettings(cmd, frontdoor.SettingsTable(), s, stateSettings)
		registerProvider(cmd, s)
		c.AddCommand(cmd)
	}
	return c
}

// runState runs one state command.
func runState(ctx context.Context, cmd string, pos []string, s frontdoor.Settings, stdout, stderr io.Writer) error {
	if s.StateStore == "" {
		return usageErr("state %s: --state-store PATH (or $LIAN_STATE_STORE) is required", cmd)
	}
	for _, ns := range pos {
		if err := state.ValidNamespace(ns); err != nil {
			return &UsageError{Msg: "state rm: " + err.Error()}
		}
	}
	if s.StateStore == frontdoor.RemoteStateStore {
		return remoteState(ctx, cmd, pos, s, stdout)
	}
	st, _, err := s.OpenExistingState(ctx)
	if err != nil {
		return err
	}
	switch cmd {
	case "ls":
		fmt.Fprintln(stderr, "store:", st.Describe())
		infos, err := st.List(ctx)
		if err != nil || len(infos) == 0 {
			if err == nil {
				fmt.Fprintln(stdout, "no committed state")
			}
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMESPACE\tGENERATION\tSIZE\tLAST USED\tCOMMITTED BY")
		for _, i := range infos {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s ago\t%s\n", i.Namespace, i.Generation, report.Bytes(uint64(i.Bytes)), time.Since(i.LastUsed).Round(time.Second), i.LastWriter)
		}
		return tw.Flush()
	case "rm":
		return removeEach(pos, func(ns string) error { return st.Remove(ctx, ns) }, stdout)
	case "unmount":
		if err := st.Unmount(); err != nil {
			return fmt.Errorf("%w (a build still uses it; try again when it ends)", err)
		}
		fmt.Fprintf(stdout, "unmounted %s\n", st.Root())
		return nil
	case "gc":
		removed, err := st.GC(ctx)
		for _, r := range removed {
			fmt.Fprintf(stdout, "removed %s\n", r)
		}
		if err == nil && len(removed) == 0 {
			fmt.Fprintln(stdout, "nothing left behind")
		}
		return err
	}
	return usageErr("state: unknown command %q (ls, rm, gc, unmount)", cmd)
}

// remoteState is `state ls|rm --state-store volumes`: the state a provider
// keeps outside this machine (hcloud's volumes; the provider implied when
// only one keeps state).
func remoteState(ctx context.Context, cmd string, namespaces []string, s frontdoor.Settings, stdout io.Writer) error {
	if keepers := compute.WithFeature(func(f compute.Features) bool { return f.RemoteState }); s.ComputeProvider == "" && len(keepers) == 1 {
		s.ComputeProvider = keepers[0]
	}
	prov, err := s.OpenProvider()
	if err != nil {
		return err
	}
	admin, ok := prov.(compute.StateAdmin)
	if !ok {
		return usageErr("--state-store %s: the %s provider keeps no state of its own (hcloud does)", s.StateStore, prov.Name())
	}
	switch cmd {
	case "ls":
		infos, err := admin.States(ctx)
		if err != nil || len(infos) == 0 {
			if err == nil {
				fmt.Fprintln(stdout, "no state volume")
			}
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMESPACE\tWHERE\tSIZE\tCREATED\tIN USE")
		for _, i := range infos {
			inUse := i.InUse
			if inUse == "" {
				inUse = "no"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\n", i.Namespace, i.Where, report.Bytes(uint64(i.Bytes)), time.Since(i.Created).Round(time.Second), inUse)
		}
		return tw.Flush()
	case "rm":
		return removeEach(namespaces, func(ns string) error { return admin.RemoveState(ctx, ns) }, stdout)
	}
	return usageErr("state %s: not for --state-store %s (volumes are detached and deleted with state rm)", cmd, s.StateStore)
}

// removeEach removes every namespace, saying each one removed; the errors
// of the others are returned together.
func removeEach(namespaces []string, remove func(string) error, stdout io.Writer) error {
	var errs []error
	for _, ns := range namespaces {
		if err := remove(ns); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stdout, "removed %s\n", ns)
	}
	return errors.Join(errs...)
}
