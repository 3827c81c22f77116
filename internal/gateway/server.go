package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/githubapp"
	"github.com/lian-build/action/internal/launch"
	"github.com/lian-build/action/internal/metrics"
	"github.com/lian-build/action/internal/natsjs"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/nats-io/nats.go"
)

// Config is the gateway's validated configuration.
type Config struct {
	Listen        string
	WebhookSecret []byte
	AppID         int64
	PrivateKey    []byte
	GitHubURL     string // web and git base (GHES, tests)
	GitHubAPIURL  string
	DataDir       string
	NatsURL       string // "" = embedded nats-server in DataDir
	Concurrency   int
	AckWait       time.Duration
	Route         RouteConfig
	Build         frontdoor.Settings // registry, provider and local settings for every build
	APIToken      string             // protects /api/v1; "" disables the API
	ReapEvery     time.Duration
	ProgressEvery time.Duration
	Retry         RetryPolicy // failed jobs: attempts and backoff before the dead letter
	// Repositories are the operator's per-repository build settings.
	Repositories []RepoSettings
	// Exec replaces the pipeline (the intake benchmark counts jobs instead of building).
	Exec Executor
	// Ready, if set, receives the listening address.
	Ready func(addr string)
}

// Validate checks the configuration once, at start.
func (c *Config) Validate() error {
	var errs []error
	if len(c.WebhookSecret) == 0 {
		errs = append(errs, errors.New("a webhook secret is required (--webhook-secret-file): unsigned deliveries are never accepted"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	if c.AppID <= 0 {
		errs = append(errs, errors.New("--app-id is required (the GitHub App's id, a number)"))
	}
	if len(c.PrivateKey) == 0 {
		errs = append(errs, errors.New("--private-key-file is required (the GitHub App's private key, PEM)"))
	}
	for name, u := range map[string]string{"--github-url": c.GitHubURL, "--github-api-url": c.GitHubAPIURL} {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			errs = append(errs, fmt.Errorf("%s %q: want an http(s) URL", name, u))
		}
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("--concurrency %d: want a positive number of builds", c.Concurrency))
	}
	if c.AckWait < 0 {
		errs = append(errs, fmt.Errorf("--ack-wait %s: may not be negative", c.AckWait))
	}
	if c.Concurrency == 0 {
		c.Concurrency = 2
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Listen != "" {
		if err := frontdoor.CheckListen("--listen", c.Listen); err != nil {
			errs = append(errs, err)
		}
	}
	for i, r := range c.Repositories {
		if r.Workspace != "" {
			if rule := cache.NameRule(r.Workspace); rule != "" {
				errs = append(errs, fmt.Errorf("repositories[%d].workspace %q: %s", i, r.Workspace, rule))
			}
		}
		if r.RunnerType != "" {
			if _, err := frontdoor.Table().Lookup(r.RunnerType); err != nil {
				errs = append(errs, fmt.Errorf("repositories[%d].runner_type: %w", i, err))
			}
		}
		for _, p := range r.Platforms {
			if err := buildkit.ValidPlatform(p); err != nil {
				errs = append(errs, fmt.Errorf("repositories[%d].platforms %q: %w", i, p, err))
			}
		}
	}
	if err := c.Build.Check(); err != nil {
		errs = append(errs, err)
	}
	if c.ReapEvery <= 0 {
		c.ReapEvery = 10 * time.Minute
	}
	if c.Route.Table == nil {
		c.Route.Table = frontdoor.Table()
	}
	return errors.Join(errs...)
}

// Run serves until ctx ends, then shuts down in order: intake closes (503),
// workers stop and requeue what runs (runners destroyed), connections drain.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	natsURL, stopNATS, err := startNATS(cfg)
	if err != nil {
		return err
	}
	defer stopNATS()
	q, err := OpenQueue(ctx, dialer(ctx, natsURL, log), cfg.AckWait, cfg.Retry)
	if err != nil {
		return err
	}
	defer q.Close()
	app, err := githubapp.NewApp(cfg.AppID, cfg.PrivateKey, cfg.GitHubAPIURL)
	if err != nil {
		return err
	}
	m := NewMetrics(func() float64 {
		d, _ := q.Depth(ctx)
		return float64(d)
	})
	bs := cfg.Build
	if bs.NatsURL == "" {
		bs.NatsURL = natsURL // events and the shared P95 history on the same NATS
	}
	rt, err := launch.Open(ctx, bs, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	exec, err := executor(cfg, rt, bs, app)
	if err != nil {
		return err
	}
	// Runners of a gateway that died are removed before any build starts.
	if removed, err := rt.Provider.GC(ctx); err != nil {
		log.Warn("reaping orphaned runners", "err", err)
	} else if len(removed) > 0 {
		log.Info("reaped orphaned runners", "count", len(removed))
	}
	w := &Worker{Queue: q, GitHub: app, Exec: exec, Concurrency: cfg.Concurrency,
		Table: cfg.Route.Table, ProgressEvery: cfg.ProgressEvery, Log: log, Metrics: m}
	var closed atomic.Bool
	e := routes(cfg, q, m, rt, log, closed.Load)
	return serve(ctx, cfg, e, w, rt, log, closed.Store)
}

// startNATS starts the embedded nats-server unless --nats-url names one.
func startNATS(cfg Config) (url string, stop func(), err error) {
	if cfg.NatsURL != "" {
		return cfg.NatsURL, func() {}, nil
	}
	return natsjs.Embedded(filepath.Join(cfg.DataDir, "nats"))
}

// dialer connects to NATS, reconnecting for ever on network errors; the
// queue dials again when a connection is closed for good.
// A connection closed because the gateway is stopping (ctx done) is not a
// warning.
func dialer(ctx context.Context, url string, log *slog.Logger) func() (*nats.Conn, error) {
	return func() (*nats.Conn, error) {
		nc, err := nats.Connect(url, nats.Name("lian-build gateway"), nats.MaxReconnects(-1),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				log.Warn("nats", "err", err)
			}),
			nats.ClosedHandler(func(*nats.Conn) {
				if ctx.Err() != nil {
					log.Debug("nats connection closed (the gateway is stopping)")
					return
				}
				log.Warn("nats connection closed; the queue dials again on next use")
			}))
		if err != nil {
			return nil, fmt.Errorf("--nats-url: %w", err)
		}
		return nc, nil
	}
}

func executor(cfg Config, rt *launch.Runtime, bs frontdoor.Settings, app *githubapp.App) (Executor, error) {
	if cfg.Exec != nil {
		return cfg.Exec, nil
	}
	work := filepath.Join(cfg.DataDir, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	return PipelineExecutor{Runtime: rt, Base: bs, Repos: cfg.Repositories, Tokens: app, GitURL: cfg.GitHubURL, WorkDir: work}, nil
}

// routes is the HTTP surface. /healthz is liveness: the process serves and
// its queue connection is usable (a closed one is dialled again here; if that
// fails the orchestrator should restart the gateway). /readyz is readiness:
// live, connected, and not shutting down.
func routes(cfg Config, q *Queue, m *Metrics, rt *launch.Runtime, log *slog.Logger, closed func() bool) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	in := &Intake{Secret: cfg.WebhookSecret, Queue: q, Route: cfg.Route, Log: log, Metrics: m, Closed: closed}
	e.POST("/webhooks/github", in.Handle)
	e.GET("/healthz", func(c echo.Context) error {
		if q.Healthy() != nil {
			if _, err := q.conn(c.Request().Context()); err != nil {
				return c.String(http.StatusServiceUnavailable, "unhealthy: "+err.Error()+"\n")
			}
		}
		return c.String(http.StatusOK, "ok\n")
	})
	e.GET("/readyz", func(c echo.Context) error {
		if closed() {
			return c.String(http.StatusServiceUnavailable, "not ready: shutting down\n")
		}
		if err := q.Healthy(); err != nil {
			return c.String(http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
		}
		return c.String(http.StatusOK, "ready\n")
	})
	e.GET("/metrics", echo.WrapHandler(m.Handler()))
	api := &api{rec: rt.Recorder, token: cfg.APIToken}
	g := e.Group("/api/v1", api.auth)
	g.POST("/metrics", api.postMetrics)
	g.GET("/p95", api.getP95)
	g.POST("/approvals/:workspace", api.approve(true))
	g.DELETE("/approvals/:workspace", api.approve(false))
	return e
}

// serve listens, runs the workers and the reaper, and shuts down in order.
func serve(ctx context.Context, cfg Config, e *echo.Echo, w *Worker, rt *launch.Runtime, log *slog.Logger, setClosed func(bool)) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr().String())
	}
	log.Info("gateway listening", "addr", ln.Addr().String())
	e.Listener = ln
	srvErr := make(chan error, 1)
	go func() { srvErr <- e.Start("") }()
	// Builds the workers stop are interrupted, not ended: they run again
	// on a replica (pipeline.ErrInterrupted).
	wctx, stopWorkers := context.WithCancelCause(context.WithoutCancel(ctx))
	workersDone := make(chan error, 1)
	go func() { workersDone <- w.Run(wctx) }()
	go reap(wctx, rt, cfg.ReapEvery, log)

	select {
	case <-ctx.Done():
	case err := <-srvErr:
		stopWorkers(pipeline.ErrInterrupted)
		<-workersDone
		return err
	}
	log.Info("shutting down: intake closed, requeuing running builds")
	setClosed(true)
	stopWorkers(pipeline.ErrInterrupted)
	<-workersDone
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return e.Shutdown(sctx)
}

func reap(ctx context.Context, rt *launch.Runtime, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := rt.Provider.GC(ctx); err != nil {
				log.Warn("reaping orphaned runners", "err", err)
			}
		}
	}
}

// api is /api/v1: metrics samples, P95 and approvals, behind a bearer token.
type api struct {
	rec   metrics.Recorder
	token string
}

func (a *api) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		got, _ := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		if a.token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
			return c.JSON(http.StatusUnauthorized, map[string]string{"message": "a valid Authorization: Bearer token is required"})
		}
		return next(c)
	}
}

type sampleIn struct {
	Workspace   string  `json:"workspace"`
	BuildID     string  `json:"build_id"`
	Tier        string  `json:"tier"`
	CPUP95      float64 `json:"cpu_p95"`
	MemP95Bytes uint64  `json:"mem_p95_bytes"`
	DurationMS  int64   `json:"duration_ms"`
}

func (a *api) postMetrics(c echo.Context) error {
	var in sampleIn
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return c.JSON(http.StatusBadRequest, map[string]string{"message": "body: " + err.Error()})
	}
	res := pipeline.Result{BuildID: in.BuildID, Outcome: pipeline.OutcomeSuccess, Tier: in.Tier, DurationMS: in.DurationMS, FinishedAt: time.Now()}
	if err := a.rec.Record(c.Request().Context(), in.Workspace, pipeline.Usage{Samples: 1, CPUP95: in.CPUP95, MemP95Bytes: in.MemP95Bytes}, res); err != nil {
		return c.JSON(http.StatusBadRequest, map[string]string{"message": err.Error()})
	}
	return c.JSON(http.StatusAccepted, map[string]string{"status": "recorded"})
}

func (a *api) getP95(c echo.Context) error {
	ws := c.QueryParam("workspace")
	if ws == "" {
		return c.JSON(http.StatusBadRequest, map[string]string{"message": "query parameter workspace is required"})
	}
	u, ok, err := a.rec.P95(c.Request().Context(), ws)
	if err != nil {
		return c.JSON(http.StatusInternalServerError, map[string]string{"message": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]any{"workspace": ws, "enough_samples": ok, "cpu_p95": u.CPU, "mem_p95_gb": u.MemoryGB, "samples": u.Samples, "approved": u.Approved})
}

func (a *api) approve(on bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := a.rec.SetApproved(c.Request().Context(), c.Param("workspace"), on); err != nil {
			return c.JSON(http.StatusBadRequest, map[string]string{"message": err.Error()})
		}
		return c.JSON(http.StatusOK, map[string]any{"workspace": c.Param("workspace"), "approved": on})
	}
}
