package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/metrics"
	"github.com/lian-build/action/internal/sizing"
)

// runApprove is `lian-build sizing approve|revoke WS`.
func runApprove(ctx context.Context, approve bool, args []string, stdout, stderr io.Writer) error {
	ws, rec, closeHistory, err := workspaceHistory(ctx, "sizing approve|revoke", args, stderr)
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

// workspaceHistory parses the arguments of a command that takes the history
// flags and one WORKSPACE, and opens the history.
func workspaceHistory(ctx context.Context, cmd string, args []string, stderr io.Writer) (string, metrics.Recorder, func(), error) {
	fs := newFlagSet("lian-build "+cmd, stderr)
	var hist frontdoor.Settings
	registerHistory(fs, &hist)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", metrics.Recorder{}, nil, flagErr(err)
	}
	if len(pos) > 1 || (len(pos) == 0 && cmd != "metrics show") {
		return "", metrics.Recorder{}, nil, usageErr("%s takes one WORKSPACE", cmd)
	}
	rec, closeHistory, err := hist.OpenHistory(ctx)
	if err != nil {
		return "", metrics.Recorder{}, nil, err
	}
	ws := ""
	if len(pos) == 1 {
		ws = pos[0]
	}
	return ws, rec, closeHistory, nil
}

// runMetrics is `lian-build metrics show WS`.
func runMetrics(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "show" {
		return usageErr("usage: lian-build metrics show [WORKSPACE]")
	}
	ws, rec, closeHistory, err := workspaceHistory(ctx, "metrics show", args[1:], stderr)
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
	fmt.Fprintln(tw, "BUILD\tTIME\tTIER\tCPU P95\tMEM P95\tDURATION")
	for _, s := range h.Samples {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\n", s.BuildID, s.Time.Format("2006-01-02 15:04:05"), s.Tier, s.CPUP95, frontdoor.FmtBytes(s.MemP95Bytes), frontdoor.FmtDur(s.DurationMS))
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
	fmt.Fprintf(stdout, "\nP95 over %d builds: %.2f CPU, %s → ×1.2: %d CPU / %d GB → %s (%s)\n", u.Samples, u.CPU, frontdoor.FmtBytes(uint64(u.MemoryGB*(1<<30))), cpu, mem, tier, approved)
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
