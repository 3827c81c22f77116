package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/githubapp"
	"github.com/lian-build/action/internal/launch"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
)

func openTestQueue(t *testing.T, ackWait time.Duration, retry RetryPolicy) (*Queue, string) {
	t.Helper()
	ns := testenv.StartNATS(t, true)
	q, err := OpenQueue(context.Background(), func() (*nats.Conn, error) { return nats.Connect(ns.ClientURL()) }, ackWait, retry)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q, ns.ClientURL()
}

// A protocol error makes nats.go close the connection for good (a subject
// beyond the server's control line did that to the gateway). The queue dials
// again, and is unhealthy until it has.
func TestQueueRecoversFromAClosedConnection(t *testing.T) {
	q, _ := openTestQueue(t, time.Second, RetryPolicy{})
	ctx := context.Background()
	if err := q.Accept(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	c, err := q.conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.nc.Publish("x."+strings.Repeat("a", 8<<10), nil) // the server answers -ERR and closes
	_ = c.nc.Flush()
	deadline := time.Now().Add(5 * time.Second)
	for !c.nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !c.nc.IsClosed() {
		t.Fatal("the connection did not close on a maximum-control-line error; the test proves nothing")
	}
	if err := q.Healthy(); err == nil {
		t.Fatal("Healthy() = nil with a closed connection")
	}
	if err := q.Accept(ctx, "second"); err != nil {
		t.Fatalf("Accept after the close: %v", err)
	}
	if err := q.Accept(ctx, "first"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("the dedupe state was lost across the redial: %v", err)
	}
	if err := q.Healthy(); err != nil {
		t.Fatalf("Healthy() after the redial = %v", err)
	}
}

func TestRetryPolicy(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 3, Backoff: []time.Duration{time.Second, 5 * time.Second}}
	for attempt, want := range map[uint64]time.Duration{1: time.Second, 2: 5 * time.Second, 3: 5 * time.Second, 0: time.Second} {
		if got := p.delay(attempt); got != want {
			t.Errorf("delay(%d) = %v, want %v", attempt, got, want)
		}
	}
	if p.exhausted(3) || !p.exhausted(4) {
		t.Error("exhausted: 3 attempts allowed, the 4th delivery is buried")
	}
	if d := (RetryPolicy{}).withDefaults(); d.MaxAttempts != 5 || len(d.Backoff) == 0 {
		t.Errorf("defaults = %+v", d)
	}
}

// recordingGitHub is a minimal GitHub for the worker: it records check runs
// and fails creating queued ones when told to.
type recordingGitHub struct {
	mu         sync.Mutex
	failQueued bool
	// loseCreated fails this many check run creations after making them
	// (the answer lost, or the gateway gone before recording the id).
	loseCreated int
	head        string // PullRequestHead's answer
	completed   bool   // CheckRunCompleted's answer
	created     []githubapp.CheckRun
	updated     []githubapp.CheckRun
}

func (g *recordingGitHub) CreateCheckRun(_ context.Context, _ int64, _, _ string, cr githubapp.CheckRun) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failQueued && cr.Status == "queued" {
		return 0, errors.New("POST check-runs: 502 Bad Gateway")
	}
	g.created = append(g.created, cr)
	if g.loseCreated > 0 {
		g.loseCreated--
		return 0, errors.New("POST check-runs: connection reset by peer")
	}
	return int64(len(g.created)), nil
}
func (g *recordingGitHub) UpdateCheckRun(_ context.Context, _ int64, _, _ string, _ int64, cr githubapp.CheckRun) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.updated = append(g.updated, cr)
	return nil
}

// completions counts the check run updates that reported a result.
func (g *recordingGitHub) completions() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, cr := range g.updated {
		if cr.Status == "completed" {
			n++
		}
	}
	return n
}
func (g *recordingGitHub) CheckRunCompleted(context.Context, int64, string, string, int64) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.completed, nil
}
func (g *recordingGitHub) PullRequestHead(context.Context, int64, string, string, int) (string, bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.head, false, nil
}
func (g *recordingGitHub) Permission(context.Context, int64, string, string, string) (string, error) {
	return "", nil
}
func (g *recordingGitHub) React(context.Context, int64, string, string, int64, string) error {
	return nil
}
func (g *recordingGitHub) Comment(context.Context, int64, string, string, int, string) error {
	return nil
}
func (g *recordingGitHub) Token(context.Context, int64) (string, error) { return "", nil }

type countingExec struct{ n atomic.Int32 }

func (e *countingExec) Execute(context.Context, Job, io.Writer) (pipeline.Result, error) {
	e.n.Add(1)
	return pipeline.Result{Outcome: pipeline.OutcomeSuccess}, nil
}

func deadLetters(t *testing.T, url string) []DeadLetter {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	c, err := js.OrderedConsumer(ctx, StreamDead, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []DeadLetter
	for {
		msg, err := c.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			return out
		}
		var d DeadLetter
		if err := json.Unmarshal(msg.Data(), &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
}

var sha1 = strings.Repeat("ab", 20)

// A job that crashes its worker is delivered again after AckWait. A crashing
// worker never acks, so it is modelled by fetching the job and dropping it;
// after MaxAttempts such deliveries, the next worker buries the job unrun.
func TestJobThatCrashesItsWorkerIsDeadLettered(t *testing.T) {
	q, url := openTestQueue(t, 300*time.Millisecond, RetryPolicy{MaxAttempts: 2, Backoff: []time.Duration{50 * time.Millisecond}})
	ctx := context.Background()
	job := Job{Kind: JobPush, BuildID: "gpoison", DeliveryID: "poison", Installation: 1, Owner: "o", Repo: "r", SHA: sha1, Actor: "ci"}
	if _, err := q.Enqueue(ctx, job); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		batch, err := q.Fetch(ctx, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for range batch.Messages() {
			got++ // "crash": no ack, no nak
		}
		if got != 1 {
			t.Fatalf("delivery %d: got %d messages", i+1, got)
		}
	}
	gh, ex, m := &recordingGitHub{}, &countingExec{}, NewMetrics(nil)
	w := &Worker{Queue: q, GitHub: gh, Exec: ex, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m}
	batch, err := q.Fetch(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		w.handle(ctx, msg)
	}
	if n := ex.n.Load(); n != 0 {
		t.Fatalf("the poison job ran %d more times", n)
	}
	dead := deadLetters(t, url)
	if len(dead) != 1 || dead[0].Job.BuildID != "gpoison" || !strings.Contains(dead[0].Reason, "gave up after 2 attempts") || !strings.Contains(dead[0].Reason, "crashed or was killed") {
		t.Fatalf("dead letters = %+v", dead)
	}
	gh.mu.Lock()
	defer gh.mu.Unlock()
	if len(gh.created) != 1 || gh.created[0].Conclusion != "failure" || !strings.Contains(gh.created[0].Summary, "will not be retried") {
		t.Fatalf("check runs = %+v", gh.created)
	}
	if d, _ := q.Depth(ctx); d != 0 {
		t.Fatalf("queue depth %d after the dead letter", d)
	}
	if text := metricsText(t, m); !strings.Contains(text, `lian_build_jobs_dead_lettered_total{kind="push"} 1`) {
		t.Fatalf("metrics:\n%s", text)
	}
}

// A job whose check run cannot be created is retried with backoff, then
// dead-lettered with the last error; the worker goes on to the next job.
func TestFailingJobIsRetriedThenDeadLettered(t *testing.T) {
	q, url := openTestQueue(t, 5*time.Second, RetryPolicy{MaxAttempts: 3, Backoff: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}})
	gh, ex, m := &recordingGitHub{failQueued: true}, &countingExec{}, NewMetrics(nil)
	w := &Worker{Queue: q, GitHub: gh, Exec: ex, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := q.Enqueue(ctx, Job{Kind: JobPush, BuildID: "gfail", DeliveryID: "fail", Installation: 1, Owner: "o", Repo: "r", SHA: sha1, Actor: "ci"}); err != nil {
		t.Fatal(err)
	}
	var dead []DeadLetter
	for deadline := time.Now().Add(20 * time.Second); len(dead) == 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		dead = deadLetters(t, url)
	}
	if len(dead) != 1 || dead[0].Attempts != 3 || !strings.Contains(dead[0].Reason, "502 Bad Gateway") {
		t.Fatalf("dead letters = %+v", dead)
	}
	if text := metricsText(t, m); !strings.Contains(text, "lian_build_job_retries_total 2") {
		t.Fatalf("metrics:\n%s", text)
	}
	// The worker is free: the next job runs.
	gh.mu.Lock()
	gh.failQueued = false
	gh.mu.Unlock()
	if _, err := q.Enqueue(ctx, Job{Kind: JobPush, BuildID: "gok", DeliveryID: "ok", Installation: 1, Owner: "o", Repo: "r", SHA: sha1, Actor: "ci"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ex.n.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if n := ex.n.Load(); n != 1 {
		t.Fatalf("the next job ran %d times", n)
	}
}

// A job delivered again after an attempt that reported its result but did
// not record it (its state save failed, or its gateway died) is not built
// again: the check run is completed, the build state is marked done.
func TestRedeliveryOfAReportedBuildDoesNotRebuild(t *testing.T) {
	q, _ := openTestQueue(t, 5*time.Second, RetryPolicy{})
	gh, ex := &recordingGitHub{completed: true}, &countingExec{}
	w := &Worker{Queue: q, GitHub: gh, Exec: ex, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	job := Job{Kind: JobPush, BuildID: "greported", DeliveryID: "reported", Installation: 1, Owner: "o", Repo: "r", SHA: sha1, Actor: "ci"}
	if err := q.SaveState(ctx, job.BuildID, BuildState{Job: job, CheckRunID: 7}); err != nil {
		t.Fatal(err)
	}
	h := q.newHold(job.BuildID, time.Minute)
	if _, err := h.claim(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.process(ctx, w.Log, job, BuildState{Job: job, CheckRunID: 7}, h); err != nil {
		t.Fatal(err)
	}
	st, _, err := q.State(ctx, job.BuildID)
	if err != nil || !st.Done || ex.n.Load() != 0 || len(gh.created) != 0 {
		t.Fatalf("state %+v, %d builds, %d check runs created", st, ex.n.Load(), len(gh.created))
	}
}

// A delivery whose job was queued but whose record was lost (NATS failed
// between the two; the soak found it while a node died) is a duplicate
// when it comes again: the stream already holds its job's message id. It
// is answered 200, not accepted a second time.
func TestRedeliveryAfterALostRecordIsADuplicate(t *testing.T) {
	q, _ := openTestQueue(t, time.Second, RetryPolicy{})
	ctx := context.Background()
	job := Job{DeliveryID: "d-lost", BuildID: BuildIDFor("d-lost"), Kind: JobPush}
	if dup, err := q.Enqueue(ctx, job); err != nil || dup {
		t.Fatalf("first enqueue: duplicate %v, %v", dup, err)
	}
	in := &Intake{Queue: q}
	var status int
	var outcome string
	err := in.accept(ctx, slog.New(slog.DiscardHandler), "d-lost", Decision{Job: &job}, func(code int, out, _ string) error {
		status, outcome = code, out
		return nil
	})
	if err != nil || status != 200 || outcome != "duplicate" {
		t.Fatalf("the redelivery: %d %s %v; want 200 duplicate", status, outcome, err)
	}
	if seen, err := q.Seen(ctx, "d-lost"); err != nil || !seen {
		t.Errorf("the redelivery did not record the delivery: %v %v", seen, err)
	}
}

// The gateway's buckets forget what they no longer need: delivery ids after
// GitHub's redelivery reach, build states with their dead letters, holds a
// day on; none grows with every build forever.
func TestBucketsForget(t *testing.T) {
	q, _ := openTestQueue(t, time.Second, RetryPolicy{})
	c, err := q.conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for kv, want := range map[jetstream.KeyValue]time.Duration{c.deliveries: DeliveryTTL, c.builds: BuildStateTTL, c.holds: holdsTTL} {
		st, err := kv.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.TTL() != want {
			t.Errorf("bucket %s: TTL %s, want %s", st.Bucket(), st.TTL(), want)
		}
	}
}

// shaExec records the commits it built.
type shaExec struct {
	mu   sync.Mutex
	shas []string
}

func (e *shaExec) Execute(_ context.Context, j Job, _ io.Writer) (pipeline.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shas = append(e.shas, j.SHA)
	return pipeline.Result{Outcome: pipeline.OutcomeSuccess}, nil
}

// A `/lian rebuild` comment's job pins the pull request's head once: an
// attempt that created the check run but failed before recording it is
// retried on the same commit even when the head moved meanwhile, so the
// check run is found by its external id there, not made again on the new
// head (the 60-minute soak saw a build with two check runs).
func TestRetriedCommentJobKeepsItsPinnedHead(t *testing.T) {
	q, _ := openTestQueue(t, 5*time.Second, RetryPolicy{})
	first, moved := strings.Repeat("a1", 20), strings.Repeat("b2", 20)
	gh, ex := &recordingGitHub{head: first, loseCreated: 1}, &shaExec{}
	w := &Worker{Queue: q, GitHub: gh, Exec: ex, Log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	job := Job{Kind: JobComment, BuildID: "gcomment", DeliveryID: "comment", Installation: 1, Owner: "o", Repo: "r", PR: 7, Commenter: "octo", Association: "OWNER"}
	for attempt := 1; attempt <= 2; attempt++ {
		st, _, err := q.State(ctx, job.BuildID)
		if err != nil {
			t.Fatal(err)
		}
		h := q.newHold(job.BuildID, time.Minute)
		if _, err := h.claim(ctx); err != nil {
			t.Fatal(err)
		}
		err = w.process(ctx, w.Log, job, st, h)
		if (err == nil) != (attempt == 2) {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if err := h.release(ctx); err != nil {
			t.Fatal(err)
		}
		gh.mu.Lock()
		gh.head = moved // a push to the pull request before the retry
		gh.mu.Unlock()
	}
	for i, cr := range gh.created {
		if cr.HeadSHA != first {
			t.Errorf("check run %d created on %s, want the pinned %s", i+1, cr.HeadSHA, first)
		}
	}
	if len(ex.shas) != 1 || ex.shas[0] != first {
		t.Errorf("built %v, want only the pinned %s", ex.shas, first)
	}
}

// A job whose delivery the intake failed to record (it answered 202: the
// job was queued) has it recorded by the worker that runs it: a redelivery
// after the stream's duplicate window is a duplicate, not a second job
// (the 60-minute soak accepted a delivery twice so).
func TestWorkerRecordsItsJobsDelivery(t *testing.T) {
	q, _ := openTestQueue(t, 5*time.Second, RetryPolicy{})
	ctx := context.Background()
	job := Job{Kind: JobPush, DeliveryID: "d-unrecorded", BuildID: BuildIDFor("d-unrecorded"), Installation: 1, Owner: "o", Repo: "r", SHA: sha1, Actor: "ci"}
	if _, err := q.Enqueue(ctx, job); err != nil {
		t.Fatal(err)
	}
	w := &Worker{Queue: q, GitHub: &recordingGitHub{}, Exec: &countingExec{}, Log: slog.New(slog.DiscardHandler)}
	batch, err := q.Fetch(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		w.handle(ctx, msg)
	}
	if seen, err := q.Seen(ctx, job.DeliveryID); err != nil || !seen {
		t.Fatalf("the worker did not record the delivery: %v %v", seen, err)
	}
}

// namedProvider is a provider whose runners a job that never builds does not ask for.
type namedProvider struct{ compute.Provider }

func (namedProvider) Name() string { return "local" }

// A job that ends before its pipeline runs — its commit cannot be fetched,
// or a newer push superseded it while it waited — publishes build.started
// and build.failed (the 60-minute soak found superseded builds without any
// event), in the repository's workspace.
func TestJobEndedBeforeItsPipelineHasItsEvents(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"fetch failed", context.Background(), "hello-world build.started,hello-world build.failed error"},
		{"superseded", cancelled, "hello-world build.started,hello-world build.failed canceled"},
	} {
		rec := &testenv.Events{}
		p, err := pipeline.New(pipeline.Config{Provider: namedProvider{}, Events: rec})
		if err != nil {
			t.Fatal(err)
		}
		e := PipelineExecutor{Runtime: &launch.Runtime{Pipeline: p}, Tokens: &recordingGitHub{}, GitURL: "http://127.0.0.1:1", WorkDir: t.TempDir()}
		job := Job{Kind: JobPush, BuildID: "gnofetch", Owner: "Codertocat", Repo: "Hello-World", SHA: sha1, Actor: "ci"}
		res, err := e.Execute(c.ctx, job, io.Discard)
		if err == nil || res.BuildID != job.BuildID {
			t.Fatalf("%s: %+v, %v", c.name, res, err)
		}
		var got []string
		for _, e := range rec.All() {
			s := e.Workspace + " " + e.Name
			if e.Result != nil {
				s += " " + string(e.Result.Outcome)
			}
			got = append(got, s)
		}
		if got := strings.Join(got, ","); got != c.want {
			t.Errorf("%s: events %q, want %q", c.name, got, c.want)
		}
	}
}

// Of the writers that each queued a delivery's job, one claim holds: the
// replica that answers 202. A record without a claim (a replica that found
// the job queued, a worker running it) is taken over once; a writer's own
// write whose answer was lost is its own; a bare time (an earlier gateway's
// record) counts as claimed.
func TestClaimHoldsOnce(t *testing.T) {
	q, _ := openTestQueue(t, time.Second, RetryPolicy{})
	ctx := context.Background()
	if err := q.Claim(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := q.Claim(ctx, "d1"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("a second claim: %v", err)
	}
	if err := q.Accept(ctx, "d1"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("a record after the claim: %v", err)
	}
	if err := q.Accept(ctx, "d2"); err != nil {
		t.Fatal(err)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			switch err := q.Claim(ctx, "d2"); {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, ErrDuplicate):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of 8 racing claims held, want 1", won.Load())
	}
	if err := q.record(ctx, "d3", true, "n3"); err != nil {
		t.Fatal(err)
	}
	if err := q.record(ctx, "d3", true, "n3"); err != nil {
		t.Fatalf("the same write made again (its answer lost): %v", err)
	}
	c, err := q.conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.deliveries.Put(ctx, kvKey("d4"), []byte("2026-12-01T10:00:00Z")); err != nil {
		t.Fatal(err)
	}
	if err := q.Claim(ctx, "d4"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("a claim over an earlier gateway's record: %v", err)
	}
}
