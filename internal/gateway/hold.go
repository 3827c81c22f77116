package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lian-build/action/internal/natsjs"
	"github.com/lian-build/action/internal/pipeline"
)

// BucketHolds records which worker is running each build now. A hold left
// by a worker that died ends with its Until; the bucket forgets it a day on.
const (
	BucketHolds = "lian-holds"
	holdsTTL    = 24 * time.Hour
)

// A hold is one delivery's claim on its build: JetStream delivers a job at
// least once, and a worker whose in-progress acknowledgements were lost (a
// NATS node died under it) keeps building while the job is delivered
// again. The hold makes the second worker wait rather than build too: it
// takes the build over only once the holder has stopped renewing. The hold
// is a fence: a holder that cannot renew it in time stops its build, and
// confirms it before reporting the result.
type hold struct {
	q      *Queue
	key    string
	holder string
	ttl    time.Duration

	mu    sync.Mutex
	rev   uint64
	until time.Time
}

// holdRecord is a hold as the bucket keeps it.
type holdRecord struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// heldError says that another delivery holds the build, and until when.
type heldError struct{ holdRecord }

func (e *heldError) Error() string {
	return fmt.Sprintf("build held by %s until %s", e.Holder, e.Until.Format(time.RFC3339Nano))
}

// errHoldLost ends a build whose worker could not keep its hold. It is an
// interruption: the build runs on elsewhere, and this run publishes no end.
var errHoldLost = fmt.Errorf("the worker's hold on the build ran out, another worker may have taken the build over: %w", pipeline.ErrInterrupted)

// newHold is a hold on buildID, not yet claimed, for one delivery. It lasts
// ttl from each renewal.
func (q *Queue) newHold(buildID string, ttl time.Duration) *hold {
	return &hold{q: q, key: kvKey(buildID), holder: holderName(), ttl: ttl}
}

// holderName names one delivery's worker: its host and process, and a
// random part that tells deliveries in one process apart.
func holderName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s:%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// shouldTakeHold decides whether holder may claim a build whose hold is cur
// (found is false when there is none): when it is free, already its own, or
// its holder stopped renewing it.
func shouldTakeHold(cur holdRecord, found bool, holder string, now time.Time) bool {
	return !found || cur.Holder == holder || now.After(cur.Until)
}

// skew is how long before its end a holder gives its hold up for lost: the
// margin for the clocks of two gateways disagreeing.
func (h *hold) skew() time.Duration { return h.ttl / 10 }

// claim takes the hold, or says who has it (*heldError). tookOver says
// that it was another delivery's, which stopped renewing it.
func (h *hold) claim(ctx context.Context) (tookOver bool, err error) {
	c, err := h.q.conn(ctx)
	if err != nil {
		return false, err
	}
	for try := 0; ; try++ {
		cur, rev, err := readHold(ctx, c.holds, h.key)
		if err != nil {
			return false, err
		}
		now := time.Now()
		if !shouldTakeHold(cur, rev != 0, h.holder, now) {
			return false, &heldError{cur}
		}
		err = h.write(ctx, c.holds, rev, now)
		if !natsjs.IsConflict(err) || try == 2 {
			return err == nil && rev != 0 && cur.Holder != h.holder, err
		}
	}
}

// renew moves the hold's end on by its ttl. errHoldLost means another
// delivery has it now, or it ran out before this renewal.
func (h *hold) renew(ctx context.Context) error {
	c, err := h.q.conn(ctx)
	if err != nil {
		return err
	}
	h.mu.Lock()
	rev, until := h.rev, h.until
	h.mu.Unlock()
	if rev == 0 {
		return nil // not claimed yet
	}
	if time.Now().After(until.Add(-h.skew())) {
		return errHoldLost
	}
	err = h.write(ctx, c.holds, rev, time.Now())
	if !natsjs.IsConflict(err) {
		return err
	}
	// An update that timed out may have been applied: the hold is still
	// this delivery's if the bucket says so.
	cur, curRev, rerr := readHold(ctx, c.holds, h.key)
	if rerr != nil {
		return rerr
	}
	if curRev == 0 || cur.Holder != h.holder {
		return errHoldLost
	}
	h.mu.Lock()
	h.rev, h.until = curRev, cur.Until
	h.mu.Unlock()
	return nil
}

// confirm is the fence before a result is reported: the hold is renewed,
// or, when the bucket cannot be reached, still within its time.
func (h *hold) confirm(ctx context.Context) error {
	err := h.renew(ctx)
	if err == nil || errors.Is(err, errHoldLost) {
		return err
	}
	if !h.valid() {
		return errHoldLost
	}
	return nil
}

// valid says whether the hold is claimed and has not run out.
func (h *hold) valid() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev != 0 && time.Now().Before(h.until.Add(-h.skew()))
}

// release gives the hold up, if it is still this delivery's, so that the
// job's next delivery need not wait for it to run out.
func (h *hold) release(ctx context.Context) error {
	h.mu.Lock()
	rev := h.rev
	h.rev = 0
	h.mu.Unlock()
	if rev == 0 {
		return nil
	}
	c, err := h.q.conn(ctx)
	if err != nil {
		return err
	}
	err = c.holds.Delete(ctx, h.key, jetstream.LastRevision(rev))
	if natsjs.IsConflict(err) {
		return nil // taken over meanwhile: not this delivery's to give up
	}
	return err
}

// write puts this delivery's hold over revision rev (0: none yet).
func (h *hold) write(ctx context.Context, kv jetstream.KeyValue, rev uint64, now time.Time) error {
	rec := holdRecord{Holder: h.holder, Until: now.Add(h.ttl)}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	var newRev uint64
	if rev == 0 {
		newRev, err = kv.Create(ctx, h.key, b)
	} else {
		newRev, err = kv.Update(ctx, h.key, b, rev)
	}
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.rev, h.until = newRev, rec.Until
	h.mu.Unlock()
	return nil
}

// readHold is the build's hold and its revision (0: none).
func readHold(ctx context.Context, kv jetstream.KeyValue, key string) (holdRecord, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return holdRecord{}, 0, nil
	}
	if err != nil {
		return holdRecord{}, 0, err
	}
	var rec holdRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return holdRecord{}, 0, fmt.Errorf("bucket %s, key %s: %w", BucketHolds, key, err)
	}
	return rec, e.Revision(), nil
}
