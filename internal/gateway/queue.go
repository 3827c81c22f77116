package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream names.
const (
	StreamJobs     = "LIAN_JOBS"
	SubjectJobs    = "lian.jobs"
	ConsumerJobs   = "workers"
	BucketDelivery = "lian-deliveries"
	BucketBuilds   = "lian-builds"
	// DeliveryTTL keeps delivery ids longer than GitHub's redelivery reach (3 days).
	DeliveryTTL = 73 * time.Hour
)

// Queue is the durable work queue and the gateway's small state.
type Queue struct {
	js         jetstream.JetStream
	stream     jetstream.Stream
	consumer   jetstream.Consumer
	deliveries jetstream.KeyValue
	builds     jetstream.KeyValue
	ackWait    time.Duration
}

// OpenQueue creates (or opens) the stream, consumer and buckets.
func OpenQueue(ctx context.Context, nc *nats.Conn, ackWait time.Duration) (*Queue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	q := &Queue{js: js, ackWait: ackWait}
	if q.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamJobs, Subjects: []string{SubjectJobs}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	}); err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamJobs, err)
	}
	if q.consumer, err = q.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: ConsumerJobs, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: -1,
	}); err != nil {
		return nil, fmt.Errorf("consumer %s: %w", ConsumerJobs, err)
	}
	if q.deliveries, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketDelivery, TTL: DeliveryTTL, Storage: jetstream.FileStorage}); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketDelivery, err)
	}
	if q.builds, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketBuilds, Storage: jetstream.FileStorage}); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketBuilds, err)
	}
	return q, nil
}

// ErrDuplicate is a delivery id seen before.
var ErrDuplicate = errors.New("duplicate delivery")

// Accept records a delivery id; ErrDuplicate when it was seen within DeliveryTTL.
func (q *Queue) Accept(ctx context.Context, delivery string) error {
	_, err := q.deliveries.Create(ctx, kvKey(delivery), []byte(time.Now().UTC().Format(time.RFC3339)))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return ErrDuplicate
	}
	return err
}

// Forget removes a delivery id (when queuing it failed, so a redelivery is taken).
func (q *Queue) Forget(ctx context.Context, delivery string) {
	_ = q.deliveries.Delete(ctx, kvKey(delivery))
}

// Enqueue publishes a job, acknowledged by JetStream (durable) before it returns.
func (q *Queue) Enqueue(ctx context.Context, j Job) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(SubjectJobs)
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, j.DeliveryID)
	_, err = q.js.PublishMsg(ctx, msg)
	return err
}

// Depth is the number of jobs waiting or running.
func (q *Queue) Depth(ctx context.Context) (uint64, error) {
	info, err := q.stream.Info(ctx)
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
}

// State reads a build's state; ok is false when there is none.
func (q *Queue) State(ctx context.Context, buildID string) (BuildState, bool, error) {
	e, err := q.builds.Get(ctx, kvKey(buildID))
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
	_, err = q.builds.Put(ctx, kvKey(buildID), b)
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
