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

	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
)

func TestShouldTakeHold(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name  string
		cur   holdRecord
		found bool
		want  bool
	}{
		{"free", holdRecord{}, false, true},
		{"own", holdRecord{Holder: "me", Until: now.Add(time.Minute)}, true, true},
		{"another's, renewed", holdRecord{Holder: "other", Until: now.Add(time.Second)}, true, false},
		{"another's, run out", holdRecord{Holder: "other", Until: now.Add(-time.Millisecond)}, true, true},
	} {
		if got := shouldTakeHold(c.cur, c.found, "me", now); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// A hold its holder stops renewing is taken over once it runs out; the old
// holder then finds it lost, and its release leaves the new holder's alone.
func TestHoldIsTakenOverWhenItRunsOut(t *testing.T) {
	q, _ := openTestQueue(t, time.Second, RetryPolicy{})
	ctx := context.Background()
	a, b := q.newHold("g-held", 400*time.Millisecond), q.newHold("g-held", 400*time.Millisecond)
	if took, err := a.claim(ctx); err != nil || took {
		t.Fatalf("first claim: took over %v, %v", took, err)
	}
	var held *heldError
	if _, err := b.claim(ctx); !errors.As(err, &held) || held.Holder != a.holder {
		t.Fatalf("second claim while held: %v", err)
	}
	if err := a.renew(ctx); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if took, err := b.claim(ctx); err != nil || !took {
		t.Fatalf("claim after the hold ran out: took over %v, %v", took, err)
	}
	if err := a.renew(ctx); !errors.Is(err, errHoldLost) {
		t.Fatalf("the old holder's renewal: %v, want errHoldLost", err)
	}
	if err := a.confirm(ctx); !errors.Is(err, errHoldLost) {
		t.Fatalf("the old holder's fence: %v, want errHoldLost", err)
	}
	if err := a.release(ctx); err != nil {
		t.Fatalf("the old holder's release: %v", err)
	}
	c, _ := q.conn(ctx)
	if cur, rev, err := readHold(ctx, c.holds, b.key); err != nil || rev == 0 || cur.Holder != b.holder {
		t.Fatalf("after the old holder's release: %+v rev %d %v, want %s's hold", cur, rev, err, b.holder)
	}
	if err := b.renew(ctx); err != nil {
		t.Fatalf("the new holder's renewal: %v", err)
	}
	if err := b.release(ctx); err != nil {
		t.Fatal(err)
	}
	if took, err := q.newHold("g-held", time.Second).claim(ctx); err != nil || took {
		t.Fatalf("claim after the release: took over %v, %v", took, err)
	}
}

// blockingExec builds until it is let go or its context ends.
type blockingExec struct {
	n         atomic.Int32
	let       chan struct{}
	cancelled atomic.Bool
}

func (e *blockingExec) Execute(ctx context.Context, _ Job, _ io.Writer) (pipeline.Result, error) {
	e.n.Add(1)
	select {
	case <-e.let:
		return pipeline.Result{Outcome: pipeline.OutcomeSuccess, Tier: "cax11"}, nil
	case <-ctx.Done():
		e.cancelled.Store(true)
		return pipeline.Result{Outcome: pipeline.OutcomeCanceled}, ctx.Err()
	}
}

// queueWorker is a queue on the NATS server at url, opened with ackWait
// (the consumer's, until another queue is opened), and a worker on it.
func queueWorker(t *testing.T, url string, ackWait time.Duration, gh GitHub, ex Executor) (*Queue, *Worker) {
	t.Helper()
	q, err := OpenQueue(context.Background(), func() (*nats.Conn, error) { return nats.Connect(url) }, ackWait, RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q, &Worker{Queue: q, GitHub: gh, Exec: ex, Log: slog.New(slog.DiscardHandler), Metrics: NewMetrics(nil)}
}

// enqueuePush queues a push job of build id.
func enqueuePush(t *testing.T, q *Queue, id string) {
	t.Helper()
	if _, err := q.Enqueue(context.Background(), Job{Kind: JobPush, BuildID: id, DeliveryID: "d-" + id, Installation: 1, Owner: "o", Repo: "r", SHA: sha1, Actor: "ci"}); err != nil {
		t.Fatal(err)
	}
}

// handleNext fetches one delivery from q and handles it with w.
func handleNext(t *testing.T, ctx context.Context, wg *sync.WaitGroup, q *Queue, w *Worker) {
	t.Helper()
	batch, err := q.Fetch(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		wg.Add(1)
		go func(msg jetstream.Msg) { defer wg.Done(); w.handle(ctx, msg) }(msg)
		return
	}
	t.Fatal("no delivery")
}

// A job delivered again while its first worker still builds it (that
// worker's in-progress acknowledgements were lost: JetStream delivers at
// least once) is not built a second time: the second worker waits for the
// first, which reports the result once. The soak saw such a build complete
// its check run twice.
func TestRedeliveryWhileBuildingWaitsForTheHolder(t *testing.T) {
	ns := testenv.StartNATS(t, true)
	gh, ex := &recordingGitHub{}, &blockingExec{let: make(chan struct{})}
	// The first worker's in-progress acknowledgements do not reach
	// JetStream in time (its NATS node died under it): its queue told the
	// consumer an hour's ack wait, which the second queue shortens to 1 s.
	qa, wa := queueWorker(t, ns.ClientURL(), time.Hour, gh, ex)
	q, wb := queueWorker(t, ns.ClientURL(), time.Second, gh, ex)
	ctx := context.Background()
	enqueuePush(t, q, "g-twice")
	var wg sync.WaitGroup
	handleNext(t, ctx, &wg, qa, wa)
	handleNext(t, ctx, &wg, q, wb) // redelivered after the consumer's 1 s
	waitFor(t, 10*time.Second, "the second worker to wait", func() bool {
		return strings.Contains(metricsText(t, wb.Metrics), `lian_build_job_holds_total{event="waited"} 1`)
	})
	close(ex.let)
	wg.Wait()
	if n, c := ex.n.Load(), gh.completions(); n != 1 || c != 1 {
		t.Fatalf("built %d times, check run completed %d times; want once each", n, c)
	}
	if st, _, err := q.State(ctx, "g-twice"); err != nil || !st.Done {
		t.Fatalf("state %+v %v", st, err)
	}
	if d, _ := q.Depth(ctx); d != 0 {
		t.Fatalf("queue depth %d: the job was not acknowledged", d)
	}
}

// A worker whose hold another worker took over stops its build and reports
// nothing; the job is left to the new holder.
func TestWorkerThatLostItsHoldReportsNothing(t *testing.T) {
	ns := testenv.StartNATS(t, true)
	gh, ex := &recordingGitHub{}, &blockingExec{let: make(chan struct{})}
	q, w := queueWorker(t, ns.ClientURL(), 600*time.Millisecond, gh, ex)
	ctx := context.Background()
	enqueuePush(t, q, "g-lost")
	var wg sync.WaitGroup
	handleNext(t, ctx, &wg, q, w)
	waitFor(t, 10*time.Second, "the build to start", func() bool { return ex.n.Load() == 1 })
	c, _ := q.conn(ctx)
	b, _ := json.Marshal(holdRecord{Holder: "another-gateway", Until: time.Now().Add(time.Hour)})
	if _, err := c.holds.Put(ctx, kvKey("g-lost"), b); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !ex.cancelled.Load() || gh.completions() != 0 {
		t.Fatalf("build cancelled %v, check run completed %d times; want cancelled, never completed", ex.cancelled.Load(), gh.completions())
	}
	if !strings.Contains(metricsText(t, w.Metrics), `lian_build_job_holds_total{event="lost"} 1`) {
		t.Fatalf("metrics:\n%s", metricsText(t, w.Metrics))
	}
	if cur, _, err := readHold(ctx, c.holds, kvKey("g-lost")); err != nil || cur.Holder != "another-gateway" {
		t.Fatalf("the new holder's hold: %+v %v", cur, err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
