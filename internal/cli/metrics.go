package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/metrics"
	"github.com/lian-build/action/internal/report"
	"github.com/lian-build/action/internal/sizing"
	"github.com/spf13/cobra"
)

// approveCommand is `lian-build sizing approve|revoke WS`.
func approveCommand(approve bool) *cobra.Command {
	hist := newSettings()
	c := &cobra.Command{Use: "approve WORKSPACE", Short: "let a workspace's P95 history decide its tier", Args: args(1, 1, "one WORKSPACE"),
		RunE: func(c *cobra.Command, pos []string) error {
			return setApproved(c.Context(), approve, pos[0], *hist, c.OutOrStdout(), c.ErrOrStderr())
		}}
	if !approve {
		c.Use, c.Short = "revoke WORKSPACE", "stop a workspace's P95 history deciding its tier"
	}
	registerHistory(c, hist)
	return c
}

func setApproved(ctx context.Context, approve bool, ws string, hist frontdoor.Settings, stdout, stderr io.Writer) error {
	rec, closeHistory, err := hist.OpenHistory(ctx)
	if err != nil {
		return err
	}
	defer closeHistory()
	if err := rec.SetApproved(ctx, ws, approve); err != nil {
		return usageErr("%v", err)
	}
	verb := "approved"
	if !approve {
		verb = "revoked"
	}
	fmt.Fprintf(stdout, "P95 sizing %s for workspace %s\n", verb, ws)
	if u, _, err := rec.P95(ctx, ws); err == nil && u.Samples == 0 && approve {
		fmt.Fprintf(stderr, "lian-build: note: workspace %s has no recorded builds here yet; the approval takes effect once it has %d\n", ws, metrics.MinSamples)
	}
	return nil
}

// metricsCommand is `lian-build metrics show [WS]`.
func metricsCommand() *cobra.Command {
	c := &cobra.Command{Use: "metrics", Short: "a workspace's recorded builds and their P95"}
	asGroup(c)
	hist := newSettings()
	show := &cobra.Command{Use: "show [WORKSPACE]", Short: "a workspace's recorded builds and P95 (without one: the workspaces)", Args: args(0, 1, "at most one WORKSPACE"),
		RunE: func(c *cobra.Command, pos []string) error {
			ws := ""
			if len(pos) == 1 {
				ws = pos[0]
			}
			return metricsShow(c.Context(), ws, *hist, c.OutOrStdout())
		}}
	registerHistory(show, hist)
	c.AddCommand(show)
	return c
}

func metricsShow(ctx context.Context, ws string, hist frontdoor.Settings, stdout io.Writer) error {
	rec, closeHistory, err := hist.OpenHistory(ctx)
	if err != nil {
		return err
	}
	defer closeHistory()
	if ws == "" {
		return listWorkspaces(ctx, rec, stdout)
	}
	h, err := rec.Store.Get(ctx, ws)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUILD\tTIME\tTIER\tCPU P95\tMEM P95\tDURATION\tCOST")
	for _, s := range h.Samples {
		cost := "-"
		if s.CostEUR > 0 {
			cost = fmt.Sprintf("€%.4f", s.CostEUR)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\t%s\n", s.BuildID, s.Time.Format("2006-01-02 15:04:05"), s.Tier, s.CPUP95, report.Bytes(s.MemP95Bytes), report.Duration(s.DurationMS), cost)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	u, ok := metrics.Summarize(h)
	approved := "not approved"
	if h.Approved {
		approved = "approved"
	}
	if !ok {
		fmt.Fprintf(stdout, "\n%d builds recorded; the P95 rule needs %d (%s)\n", len(h.Samples), metrics.MinSamples, approved)
		return nil
	}
	cpu, mem := sizing.P95Need(u)
	t, fits := sizingTable().Fit(cpu, mem)
	tier := "no tier fits"
	if fits {
		tier = t.Name
	}
	fmt.Fprintf(stdout, "\nP95 over %d builds: %.2f CPU, %s → ×1.2: %d CPU / %d GB → %s (%s)\n", u.Samples, u.CPU, report.Bytes(uint64(u.MemoryGB*(1<<30))), cpu, mem, tier, approved)
	return nil
}

// listWorkspaces is `metrics show` without a workspace: what can be shown.
func listWorkspaces(ctx context.Context, rec metrics.Recorder, stdout io.Writer) error {
	wss, err := rec.Store.Workspaces(ctx)
	if err != nil {
		return err
	}
	if len(wss) == 0 {
		fmt.Fprintln(stdout, "no workspace has a recorded build yet")
		return nil
	}
	fmt.Fprintln(stdout, "workspaces with recorded builds (lian-build metrics show WORKSPACE):")
	for _, ws := range wss {
		fmt.Fprintln(stdout, "  "+ws)
	}
	return nil
}
