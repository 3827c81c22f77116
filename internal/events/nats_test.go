package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

func ev(name string) pipeline.Event {
	return pipeline.Event{SchemaVersion: pipeline.EventSchemaVersion, Name: name, BuildID: "b1", Workspace: "app", Actor: "ci", Tier: "cax11", SizingSource: "default", Attempt: 1, Time: time.Now()}
}

func TestPlainPublish(t *testing.T) {
	s := testenv.StartNATS(t, false)
	sub := testenv.SubscribeNATS(t, s, "lian-build.app.build.>")
	p := New(Options{URL: s.ClientURL()})
	defer p.Close()
	p.Publish(context.Background(), ev(pipeline.EventStarted))
	p.Publish(context.Background(), ev(pipeline.EventCompleted))
	for _, want := range []string{"lian-build.app.build.started", "lian-build.app.build.completed"} {
		m, err := sub.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		var got pipeline.Event
		if m.Subject != want || json.Unmarshal(m.Data, &got) != nil || got.BuildID != "b1" || got.SchemaVersion != 1 {
			t.Fatalf("got %s %s", m.Subject, m.Data)
		}
	}
}

func TestJetStreamDropsDuplicates(t *testing.T) {
	s := testenv.StartNATS(t, true)
	nc := testenv.ConnectNATS(t, s)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BUILDS", Subjects: []string{"lian-build.>"}, Duplicates: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{URL: s.ClientURL()})
	defer p.Close()
	p.Publish(ctx, ev(pipeline.EventStarted))
	p.Publish(ctx, ev(pipeline.EventStarted)) // a re-publish of the same event
	p.Publish(ctx, ev(pipeline.EventCompleted))
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2 (the duplicate dropped)", info.State.Msgs)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil || m.Header.Get(jetstream.MsgIDHeader) != "b1.build.started" {
		t.Fatalf("first message %v %v", m, err)
	}
}

// NATS down: one warning, and all of a build's events cost ≤ 2 s together.
func TestDownNATSIsBoundedAndWarnsOnce(t *testing.T) {
	for name, url := range map[string]string{"refused": refusedURL(t), "black hole": "nats://" + testenv.SilentListener(t)} {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			p := New(Options{URL: url, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			start := time.Now()
			for _, n := range []string{pipeline.EventStarted, pipeline.EventCompleted, pipeline.EventFailed} {
				p.Publish(context.Background(), ev(n))
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("publishing to a down NATS took %s", d)
			}
			if c := strings.Count(logs.String(), "level=WARN"); c != 1 {
				t.Errorf("%d warnings, want 1:\n%s", c, logs.String())
			}
		})
	}
}

func TestURLPasswordNotLogged(t *testing.T) {
	var logs bytes.Buffer
	p := New(Options{URL: "nats://user:s3cret-pw@" + strings.TrimPrefix(refusedURL(t), "nats://"), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	p.Publish(context.Background(), ev(pipeline.EventStarted))
	if strings.Contains(logs.String(), "s3cret-pw") || !strings.Contains(logs.String(), "user:***@") {
		t.Fatalf("log: %s", logs.String())
	}
}

func refusedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "nats://" + addr
}

// The client holds its own lock through each reconnect attempt, up to
// ConnectTimeout against a server that accepts and never answers; an event
// published meanwhile is held by the publisher instead of waiting for it.
func TestPublishDoesNotWaitForAReconnectAttempt(t *testing.T) {
	addr, accepted := testenv.SilentListenerAccepts(t)
	const attempt = 3 * time.Second
	p := New(Options{URL: "nats://" + addr, ConnectTimeout: attempt, Logger: slog.New(slog.DiscardHandler)})
	defer p.Close()
	p.Publish(context.Background(), ev(pipeline.EventStarted)) // the first connect: one attempt
	for i := range 2 {
		select {
		case <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection %d never came", i+1)
		}
	}
	// The second connection is the client's first reconnect attempt: it
	// holds the client for `attempt` from now.
	start := time.Now()
	p.Publish(context.Background(), ev(pipeline.EventCompleted))
	if d := time.Since(start); d > attempt/3 {
		t.Fatalf("a publish during a reconnect attempt took %s; the attempt holds the client for %s", d, attempt)
	}
	if _, n := p.status(); n != 2 {
		t.Fatalf("%d events held, want 2", n)
	}
}

// Events published while NATS is away reach its stream when it is back.
func TestHeldEventsAreSentWhenNATSIsBack(t *testing.T) {
	s := testenv.StartNATS(t, true)
	js, _ := jetstream.New(testenv.ConnectNATS(t, s))
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BUILDS", Subjects: []string{"lian-build.>"}, Duplicates: time.Hour}); err != nil {
		t.Fatal(err)
	}
	p := New(Options{URL: s.ClientURL(), Logger: slog.New(slog.DiscardHandler)})
	defer p.Close()
	p.Publish(ctx, ev(pipeline.EventStarted))
	restart := testenv.StopNATS(t, s)
	waitFor(t, "the publisher to notice NATS is away", func() bool { up, _ := p.status(); return !up })
	p.Publish(ctx, ev(pipeline.EventFailed))
	p.Publish(ctx, ev(pipeline.EventCompleted))
	if _, n := p.status(); n != 2 {
		t.Fatalf("%d events held, want 2", n)
	}
	s = restart()
	js, _ = jetstream.New(testenv.ConnectNATS(t, s))
	waitFor(t, "the held events in the stream", func() bool {
		st, err := js.Stream(ctx, "BUILDS")
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == 3
	})
	if _, n := p.status(); n != 0 {
		t.Fatalf("%d events still held", n)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 15 s for %s", what)
		}
	}
}

// NATS goes away and comes back: the publisher warns once, keeps its
// connection, and publishes again once NATS is back (no restart).
func TestReconnectsAndResumes(t *testing.T) {
	s := testenv.StartNATS(t, false)
	var logs testenv.SyncBuffer
	p := New(Options{URL: s.ClientURL(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer p.Close()
	sub := testenv.SubscribeNATS(t, s, "lian-build.app.build.>")
	p.Publish(context.Background(), ev(pipeline.EventStarted))
	if _, err := sub.NextMsg(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	s = testenv.RestartNATS(t, s, 200*time.Millisecond)
	// While away or reconnecting: warned, not lost for good.
	p.Publish(context.Background(), ev(pipeline.EventFailed))
	sub = testenv.SubscribeNATS(t, s, "lian-build.app.build.completed")
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.Publish(context.Background(), ev(pipeline.EventCompleted))
		if m, err := sub.NextMsg(300 * time.Millisecond); err == nil && m.Subject == "lian-build.app.build.completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event after NATS came back:\n%s", logs.String())
		}
	}
	p.Publish(context.Background(), ev(pipeline.EventCompleted)) // connected again: sent at once
	if _, err := sub.NextMsg(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if w := strings.Count(logs.String(), "level=WARN"); w > 1 {
		t.Errorf("%d warnings for one outage:\n%s", w, logs.String())
	}
	if w := strings.Count(logs.String(), "level=WARN"); w == 1 && !strings.Contains(logs.String(), "published again") {
		t.Errorf("warned of the outage but never said events resumed:\n%s", logs.String())
	}
}

// An event published while its stream's leader is away (killed; a new one
// is being elected) is stored once the stream answers again, within the
// caller's bound, not dropped on the first unanswered try. (The system
// soak lost a build.started so while a NATS node died.)
func TestEventOutlivesAStreamLeaderElection(t *testing.T) {
	c := testenv.StartNATSCluster(t, 3)
	js := testenv.JetStreamAt(t, c.URL())
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BUILDS", Subjects: []string{"lian-build.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("stream leader: %+v %v", info, err)
	}
	var leader int
	fmt.Sscanf(info.Cluster.Leader, "n%d", &leader)
	survivor := c.URLs[leader%3] // another node: the publisher stays connected
	p := New(Options{URL: survivor, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	defer p.Close()
	p.Publish(ctx, ev(pipeline.EventStarted)) // connected, the subject known to be covered
	c.Kill(leader - 1)
	pctx, cancel := context.WithTimeout(ctx, pipeline.PublishBound) // as the pipeline bounds it
	start := time.Now()
	p.Publish(pctx, ev(pipeline.EventCompleted))
	cancel()
	t.Logf("published in %s", time.Since(start).Round(time.Millisecond))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st, err := testenv.JetStreamAt(t, survivor).Stream(ctx, "BUILDS")
		if err == nil {
			if info, err = st.Info(ctx); err == nil && info.State.Msgs == 2 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream holds %+v (%v), want both events", info.State, err)
		}
	}
}

// A publish never outlives StoreBound, whatever its context: the pool
// publishes with a request's context, which has no deadline, and a drain
// hung on a publish retried forever. A stream deleted after its subject
// was found covered fails every try; the subject is looked up again next
// time, and then published at once.
func TestPublishIsBoundedWithoutADeadline(t *testing.T) {
	s := testenv.StartNATS(t, true)
	js := testenv.JetStreamAt(t, s.ClientURL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BUILDS", Subjects: []string{"lian-build.>"}}); err != nil {
		t.Fatal(err)
	}
	p := New(Options{URL: s.ClientURL()})
	defer p.Close()
	p.Publish(ctx, ev(pipeline.EventStarted))
	if err := js.DeleteStream(ctx, "BUILDS"); err != nil {
		t.Fatal(err)
	}
	for i, bound := range []time.Duration{StoreBound + 2*time.Second, 2 * time.Second} {
		start := time.Now()
		p.Publish(ctx, ev(pipeline.EventStarted))
		if took := time.Since(start); took > bound {
			t.Errorf("publish %d took %s, want at most %s", i+1, took, bound)
		}
	}
}
