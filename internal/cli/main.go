// Package cli is the lian-build command line over the shared pipeline: a
// cobra command tree whose build flags come from the settings table.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/version"
)

// Exit codes (frontdoor's, the same for every front door).
const (
	ExitOK       = frontdoor.ExitOK
	ExitFailed   = frontdoor.ExitFailed
	ExitUsage    = frontdoor.ExitUsage
	ExitOOM      = frontdoor.ExitOOM
	ExitTimeout  = frontdoor.ExitTimeout
	ExitCanceled = frontdoor.ExitCanceled
)

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	level := slog.LevelWarn
	if v := os.Getenv("LIAN_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			fmt.Fprintf(stderr, "LIAN_LOG_LEVEL: %v\n", err)
			return ExitUsage
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// containerd's content store (OCI layouts) logs through logrus; keep its chatter out of build output.
	logrus.SetLevel(logrus.ErrorLevel)
	root := NewCommand(log)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	return exitCode(root.ExecuteContext(ctx), stderr)
}

// Run is the process: signals become a cancelled context, and the exit code
// is returned for os.Exit.
//
// SIGINT and SIGTERM cancel the build; the pipeline still destroys its runner.
// SIGPIPE (stdout closed, as in `lian-build build … | head -c 100`) does the
// same instead of killing the process with its runner left behind. A second
// SIGINT or SIGTERM exits at once with 130.
func Run(args []string) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	go func() {
		interrupts := 0
		for sig := range sigs {
			// Every write to the closed pipe raises SIGPIPE again: it never forces.
			if sig != syscall.SIGPIPE {
				interrupts++
			}
			if interrupts > 1 {
				fmt.Fprintf(os.Stderr, "lian-build: %v again: exiting now\n", sig)
				os.Exit(ExitCanceled)
			}
			cancel(fmt.Errorf("%v", sig))
		}
	}()
	return Main(ctx, args, os.Stdout, os.Stderr)
}

// Command groups of the root's help.
var groups = []*cobra.Group{
	{ID: "build", Title: "Build:"},
	{ID: "runners", Title: "Runners, state and pools:"},
	{ID: "catalog", Title: "Layer catalogs (lamina):"},
	{ID: "other", Title: "Other:"},
}

// NewCommand is the lian-build command tree.
func NewCommand(log *slog.Logger) *cobra.Command {
	root := &cobra.Command{
		Use:   "lian-build",
		Short: "container builds on fresh, right-sized BuildKit runners",
		Long: `lian-build — container builds on fresh, right-sized BuildKit runners

Exit codes: 0 success, 1 build failed, 2 bad input, 3 out of memory on every
allowed tier, 4 time budget exceeded, 130 interrupted.`,
		Version:       version.String("lian-build"),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	asGroup(root)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("%v (%s --help)", err, c.CommandPath())
	})
	root.SetUsageFunc(usage)
	root.AddGroup(groups...)
	inGroup("build", root, buildCommand(frontdoor.SettingsTable(), log), specCommand(), sizingCommand(), metricsCommand(), sbomCommand())
	inGroup("runners", root, runnersCommand(), stateCommand(), poolCommand(log))
	inGroup("catalog", root, catalogCommand(log))
	inGroup("other", root, versionCommand())
	root.SetHelpCommandGroupID("other")
	root.SetCompletionCommandGroupID("other")
	return root
}

func inGroup(id string, parent *cobra.Command, cmds ...*cobra.Command) {
	for _, c := range cmds {
		c.GroupID = id
		parent.AddCommand(c)
	}
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "the lian-build and BuildKit versions (also --version)",
		Args:  noArgs,
		Run:   func(c *cobra.Command, _ []string) { fmt.Fprintln(c.OutOrStdout(), version.String("lian-build")) },
	}
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return ExitOK
	}
	var ue *UsageError
	code := frontdoor.ExitCode(err)
	if errors.As(err, &ue) {
		code = ExitUsage
	}
	fmt.Fprintf(stderr, "lian-build: %v\n", err)
	return code
}

func sizingTable() sizing.Table { return frontdoor.Table() }

func defaultWorkspace(dir string) string { return frontdoor.DefaultWorkspace(dir) }
