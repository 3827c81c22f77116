// Command replica is a gateway replica for the cluster tests: the real
// gateway (flags, queue, intake, workers, GitHub calls) whose builds are a
// short sleep. A finished build appends its id and the replica's pid to
// $LIAN_REPLICA_LOG; the
// address it listens on is printed as "listening ADDR".
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lian-build/action/internal/gateway"
	"github.com/lian-build/action/internal/pipeline"
)

type sleepExec struct {
	log string
	d   time.Duration
}

func (s sleepExec) Execute(ctx context.Context, job gateway.Job, _ io.Writer) (pipeline.Result, error) {
	select {
	case <-ctx.Done():
		return pipeline.Result{BuildID: job.BuildID, Outcome: pipeline.OutcomeCanceled}, ctx.Err()
	case <-time.After(s.d):
	}
	f, err := os.OpenFile(s.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return pipeline.Result{}, err
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, job.BuildID, os.Getpid()); err != nil {
		return pipeline.Result{}, err
	}
	return pipeline.Result{BuildID: job.BuildID, Outcome: pipeline.OutcomeSuccess, Tier: "cax11", StepsTotal: 3, StepsCached: 1}, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := gateway.ParseFlags(ctx, os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	d, _ := time.ParseDuration(os.Getenv("LIAN_REPLICA_BUILD"))
	cfg.Exec = sleepExec{log: os.Getenv("LIAN_REPLICA_LOG"), d: d}
	cfg.Ready = func(addr string) { fmt.Println("listening", addr) }
	if err := gateway.Run(ctx, cfg, slog.New(slog.NewJSONHandler(os.Stderr, nil))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
