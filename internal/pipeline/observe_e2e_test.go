package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/events"
	"github.com/lian-build/action/internal/metrics"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
	"github.com/nats-io/nats.go"
)

// A subscriber sees started → completed, in order, with the documented fields.
func TestLifecycleEventsOnNATS(t *testing.T) {
	s := testenv.StartNATS(t, false)
	sub := testenv.SubscribeNATS(t, s, "lian-build.app.build.>")
	e := newEnv(t, nil)
	pub := events.New(events.Options{URL: s.ClientURL()})
	defer pub.Close()
	p, err := pipeline.New(pipeline.Config{Provider: e.prov, Events: pub})
	if err != nil {
		t.Fatal(err)
	}
	req := e.request(project(t, "FROM base\nRUN true\n", map[string]string{}))
	req.Workspace, req.Actor, req.Commit, req.Ref = "app", cache.Actor{Kind: cache.ActorHuman, ID: "jpl"}, "0123abc", "refs/heads/main"
	res, err := p.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	for i := 0; i < 2; i++ {
		m, err := sub.NextMsg(3 * time.Second)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		var body map[string]any
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatal(err)
		}
		body["subject"] = m.Subject
		got = append(got, body)
	}
	if got[0]["subject"] != "lian-build.app.build.started" || got[1]["subject"] != "lian-build.app.build.completed" {
		t.Fatalf("order: %v then %v", got[0]["subject"], got[1]["subject"])
	}
	for _, e := range got {
		for k, want := range map[string]any{"schema_version": 1.0, "build_id": res.BuildID, "workspace": "app", "actor": "human:jpl", "commit": "0123abc", "ref": "refs/heads/main", "tier": "cax11", "sizing_source": "default"} {
			if e[k] != want {
				t.Errorf("%s: %s = %v, want %v", e["subject"], k, e[k], want)
			}
		}
		for _, k := range []string{"attempt", "started_at", "time"} {
			if _, ok := e[k]; !ok {
				t.Errorf("%s has no %s", e["subject"], k)
			}
		}
	}
	if _, ok := got[0]["result"]; ok {
		t.Error("started carries a result")
	}
	if r, ok := got[1]["result"].(map[string]any); !ok || r["outcome"] != "success" || r["steps_total"] != 1.0 {
		t.Errorf("completed result %v", got[1]["result"])
	}
}

// timedPublisher measures how long the pipeline spends publishing.
type timedPublisher struct {
	inner pipeline.Publisher
	mu    sync.Mutex
	spent time.Duration
}

func (p *timedPublisher) Publish(ctx context.Context, e pipeline.Event) {
	start := time.Now()
	p.inner.Publish(ctx, e)
	p.mu.Lock()
	p.spent += time.Since(start)
	p.mu.Unlock()
}

func TestBuildSucceedsWithNATSDown(t *testing.T) {
	addr := testenv.SilentListener(t) // accepts and never answers
	e := newEnv(t, nil)
	tp := &timedPublisher{inner: events.New(events.Options{URL: "nats://" + addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})}
	p, err := pipeline.New(pipeline.Config{Provider: e.prov, Events: tp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(context.Background(), e.request(project(t, "FROM base\nRUN true\n", map[string]string{}))); err != nil {
		t.Fatalf("the build failed because NATS is down: %v", err)
	}
	t.Logf("spent %s", tp.spent)
	if tp.spent > 2*time.Second {
		t.Fatalf("events with NATS down cost %s, want ≤ 2s", tp.spent)
	}
}

// A step holding ~300 MiB reports mem_p95 within 25%; three recorded builds
// and an approval make the P95 rule decide, as a hand calculation predicts.
func TestMemoryP95AndHistory(t *testing.T) {
	e := newEnv(t, nil)
	rec := metrics.Recorder{Store: metrics.FileStore{Dir: t.TempDir()}}
	p, err := pipeline.New(pipeline.Config{Provider: e.prov, Metrics: rec, History: rec, SampleEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dir := project(t, "FROM base\nARG N=0\nRUN echo $N && dd if=/dev/zero of=/dev/null bs=300M count=120\n", map[string]string{"Cargo.toml": "[package]\n"})
	var memP95 []uint64
	for i := 0; i < 3; i++ {
		req := e.request(dir)
		req.Workspace = "heavy"
		req.Build.BuildArgs = map[string]string{"N": string(rune('0' + i))}
		res, err := p.Run(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Tier != "cax21" || res.SizingSource != sizing.SourceDefault {
			t.Fatalf("build %d sized %s by %s before approval", i, res.Tier, res.SizingSource)
		}
		u := res.Usage
		if u == nil || u.Samples < 3 {
			t.Fatalf("usage %+v", u)
		}
		mib := float64(u.MemP95Bytes) / (1 << 20)
		if mib < 300*0.75 || mib > 300*1.25 {
			t.Errorf("mem_p95 %.0f MiB, want 300 MiB ± 25%% (samples %d, peak %d MiB)", mib, u.Samples, u.MemPeak>>20)
		}
		memP95 = append(memP95, u.MemP95Bytes)
	}
	h, err := rec.Store.Get(context.Background(), "heavy")
	if err != nil || len(h.Samples) != 3 {
		t.Fatalf("history %+v %v", h, err)
	}
	for _, s := range h.Samples {
		if s.DurationMS <= 0 || s.Tier != "cax21" || s.BuildID == "" {
			t.Errorf("recorded sample %+v", s)
		}
	}
	// Unapproved: a suggestion only.
	d, err := sizing.Resolve(context.Background(), sizing.Input{Table: sizing.HCloud, Workspace: "heavy", History: rec, ContextDir: dir})
	if err != nil || d.Source != sizing.SourceDefault || !strings.HasPrefix(d.Suggestion, "cax11") {
		t.Fatalf("unapproved: %+v %v", d, err)
	}
	if err := rec.SetApproved(context.Background(), "heavy", true); err != nil {
		t.Fatal(err)
	}
	// By hand: P95 of three values is the largest; ~0.3 GB × 1.2 < 4 GB floor, CPU < 2 floor → 2 CPU / 4 GB → cax11.
	res, err := p.Run(context.Background(), func() pipeline.Request { r := e.request(dir); r.Workspace = "heavy"; return r }())
	if err != nil {
		t.Fatal(err)
	}
	if res.Tier != "cax11" || res.SizingSource != sizing.SourceP95 || !strings.Contains(res.SizingReason, "P95 of 3 builds") {
		t.Fatalf("approved: tier %s from %s (%s)", res.Tier, res.SizingSource, res.SizingReason)
	}
}

// A registry password (and a build secret) appear in no report, event, log line or progress output.
func TestCredentialsNeverLeak(t *testing.T) {
	const user, password, secret = "ci-bot", "Pa55-w0rd-9f3b2c71", "sekrit-77ad21e0"
	t.Setenv("LIAN_TEST_SECRET", secret)
	reg := testenv.StartRegistry(t, testenv.WithBasicAuth(user, password))
	s := testenv.StartNATS(t, false)
	nc := testenv.ConnectNATS(t, s)
	var evMu sync.Mutex
	var evs bytes.Buffer
	if _, err := nc.Subscribe("lian-build.>", func(m *nats.Msg) { evMu.Lock(); evs.Write(m.Data); evMu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, reg.Host)
	var logs, progress bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pub := events.New(events.Options{URL: s.ClientURL(), Logger: log})
	p, err := pipeline.New(pipeline.Config{Provider: e.prov, Events: pub, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	dir := project(t, "FROM base\nRUN --mount=type=secret,id=s cat /run/secrets/s\nRUN echo done\n", map[string]string{})
	req := namespaced(e, dir, reg.Host, jplActor, cache.Rollback)
	req.Cache.Auth = cache.Auth{Username: user, Password: password}
	req.Build.RegistryAuth = map[string]buildkit.Credential{reg.Host: {Username: user, Password: password}}
	req.Build.Secrets = []buildkit.Secret{{ID: "s", Env: "LIAN_TEST_SECRET"}}
	req.Build.Tags, req.Build.Push = []string{reg.Host + "/team/app:1"}, true
	req.Build.ProgressOut = &progress
	res, err := p.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("build with registry auth: %v", err)
	}
	pub.Close()
	if res.CachePromoted == "" || reg.ManifestDigest(t, "team/app", "1") != "" {
		// The test's HEAD is anonymous: an auth-protected registry must refuse it.
		t.Fatalf("promoted %q; anonymous HEAD must be refused", res.CachePromoted)
	}
	report, _ := json.Marshal(res)
	time.Sleep(200 * time.Millisecond)
	evMu.Lock()
	defer evMu.Unlock()
	if evs.Len() == 0 {
		t.Fatal("no events received")
	}
	for name, text := range map[string]string{"report": string(report), "events": evs.String(), "logs": logs.String(), "progress": progress.String()} {
		for _, s := range []string{password, secret} {
			if strings.Contains(text, s) {
				t.Errorf("%q appears in the %s", s[:4]+"…", name)
			}
		}
	}
	if !strings.Contains(progress.String(), "***") {
		t.Error("the secret's output was not masked in the progress")
	}
}
