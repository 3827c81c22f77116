// Package cli is the lian-build command line over the shared pipeline.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/version"
	"github.com/sirupsen/logrus"
)

const usage = `lian-build — container builds on fresh, right-sized BuildKit runners

usage:
  lian-build build [flags] CONTEXT   build CONTEXT (see lian-build build -h)
  lian-build spec check [PATH]       validate a .build-spec.ncl or a BuildDirectives file
  lian-build sizing explain CONTEXT  which sizing rule decides the tier, and why
  lian-build sizing approve|revoke WS  let a workspace's P95 history decide its tier (or stop it)
  lian-build metrics show WS         a workspace's recorded builds and their P95
  lian-build runners ls              list local runners
  lian-build runners gc              remove runners whose owner died or lease expired
  lian-build state ls|rm NS|gc       warm runner state per cache namespace (--state-store PATH)
  lian-build catalog check [DIR]     a lamina catalog's workflow.ncl files (--check-dag: bases, cycles, names)
  lian-build catalog build [DIR] [LAYER…]  build, verify and promote a catalog's layers (--registry HOST/PREFIX)
  lian-build catalog test [DIR] --layer NAME  build and verify a layer and its bases, promote nothing
  lian-build pool serve              a VM pool: lease Hetzner runners, reuse them within the billed hour
  lian-build pool ls|drain|resume    a pool's VMs and leases; drain it (idle VMs retired, none made) or resume (--pool-url)
  lian-build version                 the lian-build and BuildKit versions (also --version)

Exit codes: 0 success, 1 build failed, 2 bad input, 3 out of memory on every
allowed tier, 4 time budget exceeded, 130 interrupted.
`

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
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	if u, ok := groupUsage[args[0]]; ok && len(args) > 1 && isHelp(args[1]) {
		fmt.Fprintln(stdout, u)
		return ExitOK
	}
	var err error
	switch args[0] {
	case "build":
		err = runBuild(ctx, args[1:], stdout, stderr, log)
	case "runners":
		err = runRunners(ctx, args[1:], stdout, stderr)
	case "state":
		err = runState(ctx, args[1:], stdout, stderr)
	case "catalog":
		err = runCatalog(ctx, args[1:], stdout, stderr, log)
	case "pool":
		err = runPool(ctx, args[1:], stdout, stderr, log)
	case "spec":
		err = runSpec(ctx, args[1:], stdout, stderr)
	case "sizing":
		err = runSizing(ctx, args[1:], stdout, stderr)
	case "metrics":
		err = runMetrics(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	case "version", "--version":
		fmt.Fprintln(stdout, version.String("lian-build"))
		return ExitOK
	default:
		err = usageErr("unknown command %q\n%s", args[0], usage)
	}
	return exitCode(err, stderr)
}

// groupUsage is the usage of each command that has subcommands, printed
// (exit 0) for `lian-build GROUP -h|--help|help`.
var groupUsage = map[string]string{
	"catalog": "usage: lian-build catalog check [DIR] [--check-dag] | catalog build [DIR] [LAYER…] | catalog test [DIR] --layer NAME  (--registry HOST/PREFIX)\n(lian-build catalog check|build|test -h: their flags)",
	"pool":    "usage: lian-build pool serve|ls|drain|resume [flags]\n(lian-build pool serve|ls|drain|resume -h: their flags)",
	"runners": "usage: lian-build runners ls|gc|image [flags]\n(lian-build runners ls|gc|image -h: their flags)",
	"state":   "usage: lian-build state ls|rm NAMESPACE…|gc --state-store PATH\n(lian-build state ls -h: the flags)",
	"spec":    "usage: lian-build spec check [PATH]",
	"sizing":  "usage: lian-build sizing explain [--runner-type T] [--workspace WS] CONTEXT | sizing approve|revoke WS",
	"metrics": "usage: lian-build metrics show [WORKSPACE]",
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "help" }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK // the flag set printed the usage
	}
	var ue *UsageError
	code := frontdoor.ExitCode(err)
	if errors.As(err, &ue) {
		code = ExitUsage
	}
	fmt.Fprintf(stderr, "lian-build: %v\n", err)
	return code
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func sizingTable() sizing.Table { return frontdoor.Table() }

func defaultWorkspace(dir string) string { return frontdoor.DefaultWorkspace(dir) }
