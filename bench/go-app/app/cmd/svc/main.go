// Command svc is a small shop service: users, items, orders, search and
// export over HTTP. It is the Go workload of lian-build's benchmarks.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"example.com/svc/internal/api"
	"example.com/svc/internal/auth"
	"example.com/svc/internal/config"
	"example.com/svc/internal/metrics"
	"example.com/svc/internal/search"
	"example.com/svc/internal/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "svc:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return err
	}
	a := &api.API{Store: store.New(), Index: search.New(), Auth: auth.Signer{Key: cfg.Secret}, Metrics: metrics.New("svc"),
		PageSize: cfg.PageSize, Started: time.Now()}
	srv := &http.Server{Addr: cfg.Addr, Handler: a.Handler(), ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
