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

// Accept records a delivery id without claiming it (the job was queued
// before, or a worker runs it); ErrDuplicate when it was recorded before,
// within DeliveryTTL.
func (q *Queue) Accept(ctx context.Context, delivery string) error {
	return q.record(ctx, delivery, false, rand.Text())
}

// Claim records a delivery id as answered 202 by the caller, which queued
// its job: nil when no other writer claimed it, ErrDuplicate when one did.
// A record without a claim (a replica that found the job queued, a worker
// that runs it) is taken over by compare-and-set, so that of replicas that
// each queued the same delivery — each one's publish left without an answer
// — exactly one answers 202.
func (q *Queue) Claim(ctx context.Context, delivery string) error {
	return q.record(ctx, delivery, true, rand.Text())
}

// record writes a delivery's record under nonce, a claim or not: nil when
// it is written — or was, by this writer's own call whose answer was lost.
// A record that meets another's is a duplicate, but a claim takes over one
// without a claim.
func (q *Queue) record(ctx context.Context, delivery string, claim bool, nonce string) error {
	c, err := q.conn(ctx)
	if err != nil {
		return err
	}
	key := kvKey(delivery)
	value, _ := json.Marshal(deliveryRecord{At: time.Now().UTC(), Claimed: claim, Nonce: nonce})
	for {
		calls, err := natsjs.Retry(ctx, func(ctx context.Context) error {
			_, err := c.deliveries.Create(ctx, key, value)
			return err
		})
		switch {
		case !natsjs.IsConflict(err):
			return err
		case !claim && calls == 1:
			return ErrDuplicate // found at once: not this writer's
		}
		var e jetstream.KeyValueEntry
		_, err = natsjs.Retry(ctx, func(ctx context.Context) (err error) {
			e, err = c.deliveries.Get(ctx, key)
			return err
		})
		switch {
		case err != nil && !claim:
			return ErrDuplicate // the Create found the key
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue // expired meanwhile
		case err != nil:
			return err
		}
		switch r := readRecord(e.Value()); {
		case r.Nonce == nonce:
			return nil // this writer's own, its answer lost
		case r.Claimed || !claim:
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
