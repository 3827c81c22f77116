package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lian-build/action/internal/natsjs"
)

// JetStream names.
const (
	StreamJobs     = "LIAN_JOBS"
	SubjectJobs    = "lian.jobs"
	ConsumerJobs   = "workers"
	StreamDead     = "LIAN_DEAD"
	SubjectDead    = "lian.dead.jobs"
	BucketDelivery = "lian-deliveries"
	BucketBuilds   = "lian-builds"
	// DeliveryTTL keeps delivery ids longer than GitHub's redelivery reach (3 days).
	DeliveryTTL = 73 * time.Hour
	// BuildStateTTL keeps a build's state for a re-run from its check run
	// as long as its dead letter is kept; the bucket does not grow forever.
	BuildStateTTL = 30 * 24 * time.Hour
)

// RetryPolicy bounds how often a failing job is tried. A job that fails is
// redelivered after Backoff[n-1] (the last entry repeats); a job delivered
// more than MaxAttempts times — it failed, or it crashed the worker that
// held it — goes to the dead-letter stream instead of being run again.
type RetryPolicy struct {
	MaxAttempts int
	Backoff     []time.Duration
}

// DefaultRetry: 5 attempts over about 7 minutes.
var DefaultRetry = RetryPolicy{MaxAttempts: 5, Backoff: []time.Duration{10 * time.Second, 30 * time.Second, 90 * time.Second, 5 * time.Minute}}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetry.MaxAttempts
	}
	if len(p.Backoff) == 0 {
		p.Backoff = DefaultRetry.Backoff
	}
	return p
}

// delay is the wait before the attempt after the given one (1-based).
func (p RetryPolicy) delay(attempt uint64) time.Duration {
	i := min(int(attempt)-1, len(p.Backoff)-1)
	return p.Backoff[max(i, 0)]
}

// exhausted reports whether a delivery numbered n may not run any more.
func (p RetryPolicy) exhausted(n uint64) bool { return n > uint64(p.MaxAttempts) }

// Queue is the durable work queue and the gateway's small state. It owns its
// NATS connection and dials a new one when the old one is closed for good
// (nats.go closes a connection, without reconnecting, on a protocol error).
type Queue struct {
	dial    func() (*nats.Conn, error)
	ackWait time.Duration
	retry   RetryPolicy

	mu sync.Mutex
	c  *queueConn
}

// queueConn is everything bound to one NATS connection.
type queueConn struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	stream     jetstream.Stream
	consumer   jetstream.Consumer
	deliveries jetstream.KeyValue
	builds     jetstream.KeyValue
	holds      jetstream.KeyValue
}

// OpenQueue dials NATS and creates (or opens) the streams, consumer and buckets.
func OpenQueue(ctx context.Context, dial func() (*nats.Conn, error), ackWait time.Duration, retry RetryPolicy) (*Queue, error) {
	q := &Queue{dial: dial, ackWait: ackWait, retry: retry.withDefaults()}
	if _, err := q.conn(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

// conn returns the live connection's handles, dialling again if it was closed.
func (q *Queue) conn(ctx context.Context) (*queueConn, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.c != nil && !q.c.nc.IsClosed() {
		return q.c, nil
	}
	nc, err := q.dial()
	if err != nil {
		return nil, fmt.Errorf("queue: connecting to NATS: %w", err)
	}
	c, err := q.open(ctx, nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	q.c = c
	return c, nil
}

func (q *Queue) open(ctx context.Context, nc *nats.Conn) (*queueConn, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	c := &queueConn{nc: nc, js: js}
	r := natsjs.Replicas(nc)
	if c.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamJobs, Subjects: []string{SubjectJobs}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, Replicas: r,
	}); err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamJobs, err)
	}
	if _, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamDead, Subjects: []string{SubjectDead}, Storage: jetstream.FileStorage, MaxAge: BuildStateTTL, Replicas: r,
	}); err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamDead, err)
	}
	// MaxDeliver is a backstop one above the policy: the worker dead-letters a
	// job on its (MaxAttempts+1)th delivery; should that fail too, JetStream
	// stops delivering it.
	if c.consumer, err = c.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: ConsumerJobs, AckPolicy: jetstream.AckExplicitPolicy, AckWait: q.ackWait, MaxDeliver: q.retry.MaxAttempts + 2,
	}); err != nil {
		return nil, fmt.Errorf("consumer %s: %w", ConsumerJobs, err)
	}
	if c.deliveries, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketDelivery, TTL: DeliveryTTL, Storage: jetstream.FileStorage, Replicas: r}); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketDelivery, err)
	}
	if c.builds, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketBuilds, TTL: BuildStateTTL, Storage: jetstream.FileStorage, Replicas: r}); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketBuilds, err)
	}
	if c.holds, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketHolds, TTL: holdsTTL, Storage: jetstream.FileStorage, Replicas: r}); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketHolds, err)
	}
	return c, nil
}

// Healthy reports whether the queue's NATS connection is up (a closed one is
// dialled again on the next use; until then the gateway is not healthy).
func (q *Queue) Healthy() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.c == nil || q.c.nc.IsClosed():
		return errors.New("queue: the NATS connection is closed")
	case !q.c.nc.IsConnected():
		return fmt.Errorf("queue: NATS is %s", strings.ToLower(q.c.nc.Status().String()))
	}
	return nil
}

// Close closes the queue's connection after flushing what is pending.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.c != nil {
		_ = q.c.nc.Drain()
	}
}

// Fetch waits up to wait for one job.
func (q *Queue) Fetch(ctx context.Context, wait time.Duration) (jetstream.MessageBatch, error) {
	c, err := q.conn(ctx)
	if err != nil {
		return nil, err
	}
	return c.consumer.Fetch(1, jetstream.FetchMaxWait(wait))
}

// DeadLetter is a job that will not be run again, and why.
type DeadLetter struct {
	Job      Job       `json:"job"`
	Reason   string    `json:"reason"`
	Attempts uint64    `json:"attempts"`
	At       time.Time `json:"at"`
}

// Bury publishes a dead letter (the job's redeliveries end with it).
func (q *Queue) Bury(ctx context.Context, d DeadLetter) error {
	c, err := q.conn(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(SubjectDead)
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, "dead-"+d.Job.DeliveryID)
	_, err = c.js.PublishMsg(ctx, msg)
	return err
}

// Enqueue publishes a job, acknowledged by JetStream (durable) before it
// returns. duplicate says the stream already held the job's message id
// (its delivery id, within the stream's duplicate window): the job was
// queued before, and is not queued again. A publish whose answer was lost
// is made again: the stream keeps one copy, and duplicate stays false (the
// copy is most likely this call's own).
func (q *Queue) Enqueue(ctx context.Context, j Job) (duplicate bool, err error) {
	b, err := json.Marshal(j)
	if err != nil {
		return false, err
	}
	c, err := q.conn(ctx)
	if err != nil {
		return false, err
	}
	msg := nats.NewMsg(SubjectJobs)
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, j.DeliveryID)
	var ack *jetstream.PubAck
	calls, err := natsjs.Retry(ctx, func(ctx context.Context) error {
		a, err := c.js.PublishMsg(ctx, msg)
		ack = a
		return err
	})
	if err != nil {
		return false, err
	}
	return ack.Duplicate && calls == 1, nil
}

// Depth is the number of jobs waiting or running.
func (q *Queue) Depth(ctx context.Context) (uint64, error) {
	c, err := q.conn(ctx)
	if err != nil {
		return 0, err
	}
	info, err := c.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// BuildState is what the gateway remembers of a build, for idempotence and reruns.
type BuildState struct {
	Job        Job    `json:"job"`
	CheckRunID int64  `json:"check_run_id,omitempty"`
	Done       bool   `json:"done"`
	Conclusion string `json:"conclusion,omitempty"`
	// Requeues counts deliveries ended by a graceful shutdown; LastError is
	// the last failure, for the dead letter.
	Requeues  uint64 `json:"requeues,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// State reads a build's state; ok is false when there is none.
func (q *Queue) State(ctx context.Context, buildID string) (BuildState, bool, error) {
	c, err := q.conn(ctx)
	if err != nil {
		return BuildState{}, false, err
	}
	e, err := c.builds.Get(ctx, kvKey(buildID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return BuildState{}, false, nil
	}
	if err != nil {
		return BuildState{}, false, err
	}
	var s BuildState
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return BuildState{}, false, err
	}
	return s, true, nil
}

// SaveState writes a build's state.
func (q *Queue) SaveState(ctx context.Context, buildID string, s BuildState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	c, err := q.conn(ctx)
	if err != nil {
		return err
	}
	_, err = c.builds.Put(ctx, kvKey(buildID), b)
	return err
}

// kvKey keeps ids to the characters KV keys allow.
func kvKey(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			out = append(out, c)
		} else {
			out = append(out, '_')
		}
	}
	return string(out)
}
