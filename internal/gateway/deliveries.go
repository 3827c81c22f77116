package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lian-build/action/internal/natsjs"
)

// ErrDuplicate is a delivery id seen before.
var ErrDuplicate = errors.New("duplicate delivery")

// deliveryRecord is what the deliveries bucket keeps of a delivery id: when
// it was recorded, and whether its writer answered GitHub 202 for it (a
// claim). The nonce lets a writer whose answer was lost (a node died, a
// leader was being elected) tell its own write from another's.
type deliveryRecord struct {
	At      time.Time `json:"at"`
	Claimed bool      `json:"claimed,omitempty"`
	Nonce   string    `json:"nonce"`
}

// readRecord reads a record; one an earlier gateway wrote (a bare time)
// counts as claimed: its writer may have answered 202.
func readRecord(b []byte) deliveryRecord {
	var r deliveryRecord
	if json.Unmarshal(b, &r) != nil || r.Nonce == "" {
		return deliveryRecord{Claimed: true}
	}
	return r
}

func newRecord(claimed bool) ([]byte, deliveryRecord) {
	r := deliveryRecord{At: time.Now().UTC(), Claimed: claimed, Nonce: rand.Text()}
	b, _ := json.Marshal(r)
	return b, r
}

// Accept records a delivery id without claiming it (the job was queued
// before, or a worker runs it); ErrDuplicate when it was recorded before,
// within DeliveryTTL.
func (q *Queue) Accept(ctx context.Context, delivery string) error {
	c, err := q.conn(ctx)
	if err != nil {
		return err
	}
	value, mine := newRecord(false)
	calls, err := natsjs.Retry(ctx, func(ctx context.Context) error {
		_, err := c.deliveries.Create(ctx, kvKey(delivery), value)
		return err
	})
	if !natsjs.IsConflict(err) {
		return err
	}
	if calls > 1 {
		if e, gerr := c.deliveries.Get(ctx, kvKey(delivery)); gerr == nil && readRecord(e.Value()).Nonce == mine.Nonce {
			return nil // this call's own first write, whose answer was lost
		}
	}
	return ErrDuplicate
}

// Claim records a delivery id as answered 202 by the caller, which queued
// its job: nil when no other writer claimed it, ErrDuplicate when one did.
// A record without a claim (a replica that found the job queued, a worker
// that runs it) is taken over by compare-and-set, so that of replicas that
// each queued the same delivery — each one's publish left without an answer
// — exactly one answers 202.
func (q *Queue) Claim(ctx context.Context, delivery string) error {
	value, mine := newRecord(true)
	return q.claim(ctx, delivery, value, mine.Nonce)
}

func (q *Queue) claim(ctx context.Context, delivery string, value []byte, nonce string) error {
	c, err := q.conn(ctx)
	if err != nil {
		return err
	}
	key := kvKey(delivery)
	for {
		_, err = natsjs.Retry(ctx, func(ctx context.Context) error {
			_, err := c.deliveries.Create(ctx, key, value)
			return err
		})
		if !natsjs.IsConflict(err) {
			return err
		}
		var e jetstream.KeyValueEntry
		if _, err := natsjs.Retry(ctx, func(ctx context.Context) (err error) {
			e, err = c.deliveries.Get(ctx, key)
			return err
		}); errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired meanwhile
		} else if err != nil {
			return err
		}
		switch r := readRecord(e.Value()); {
		case r.Nonce == nonce:
			return nil
		case r.Claimed:
			return ErrDuplicate
		}
		_, err = natsjs.Retry(ctx, func(ctx context.Context) error {
			_, err := c.deliveries.Update(ctx, key, value, e.Revision())
			return err
		})
		if !natsjs.IsConflict(err) {
			return err
		}
		// Another writer came between (or this one's update was written
		// without an answer): read again.
	}
}

// Seen reports whether a delivery id was recorded before (within DeliveryTTL).
func (q *Queue) Seen(ctx context.Context, delivery string) (bool, error) {
	c, err := q.conn(ctx)
	if err != nil {
		return false, err
	}
	_, err = natsjs.Retry(ctx, func(ctx context.Context) error {
		_, err := c.deliveries.Get(ctx, kvKey(delivery))
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}
