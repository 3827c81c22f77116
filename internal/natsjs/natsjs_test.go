package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lian-build/action/internal/natsjs"
	"github.com/lian-build/action/internal/testenv"
)

// A lost compare-and-set is a conflict on a single server and on a
// three-node cluster's replicated bucket alike (the soak saw pool leases
// fail there: the cluster's code was taken for an outage); other errors
// are not.
func TestIsConflict(t *testing.T) {
	for _, c := range []struct {
		name string
		url  func(*testing.T) string
	}{
		{"single server", func(t *testing.T) string { return testenv.StartNATS(t, true).ClientURL() }},
		{"three-node cluster", func(t *testing.T) string { return testenv.StartNATSCluster(t, 3).URL() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			nc, err := nats.Connect(c.url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx := context.Background()
			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "cas", Replicas: natsjs.Replicas(nc)})
			if err != nil {
				t.Fatal(err)
			}
			rev, err := kv.Create(ctx, "k", []byte("1"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kv.Update(ctx, "k", []byte("2"), rev); err != nil {
				t.Fatal(err)
			}
			_, createErr := kv.Create(ctx, "k", []byte("3"))
			_, updateErr := kv.Update(ctx, "k", []byte("3"), rev)
			deleteErr := kv.Delete(ctx, "k", jetstream.LastRevision(rev))
			for what, err := range map[string]error{"create": createErr, "update": updateErr, "delete": deleteErr} {
				if !natsjs.IsConflict(err) {
					t.Errorf("%s over a newer revision: %v is not a conflict", what, err)
				}
			}
			// Writers racing at one revision: one wins, the others lost a
			// compare-and-set (a cluster's leader rejects most of those
			// still in flight with 10164).
			for round := range 5 {
				if won := race(t, kv); won != 1 {
					t.Errorf("round %d: %d racing writers won, want 1", round, won)
				}
			}
			if _, err := kv.Get(ctx, "missing"); natsjs.IsConflict(err) {
				t.Errorf("a missing key (%v) is a conflict", err)
			}
			if natsjs.IsConflict(errors.New("nats: timeout")) || natsjs.IsConflict(nil) {
				t.Error("a timeout or no error is a conflict")
			}
		})
	}
}

// race has ten writers update one key at its current revision at once; it
// returns how many won, and fails the test for a loser whose error is not
// a conflict.
func race(t *testing.T, kv jetstream.KeyValue) (won int) {
	t.Helper()
	ctx := context.Background()
	e, err := kv.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 10)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { _, errs[i] = kv.Update(ctx, "k", []byte("racer"), e.Revision()) })
	}
	wg.Wait()
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !natsjs.IsConflict(err):
			t.Errorf("a racing writer that lost: %v is not a conflict", err)
		}
	}
	return won
}

// clusterBucket is a bucket replicated on a new three-node cluster, through
// a client of its first node (the tests stop the others: a client of a
// stopped node would be reconnecting, its request unanswered until its
// deadline, as CI saw once).
func clusterBucket(t *testing.T) (*testenv.NATSCluster, jetstream.KeyValue) {
	c := testenv.StartNATSCluster(t, 3)
	nc, err := nats.Connect(c.URLs[0], nats.MaxReconnects(-1), nats.DontRandomize())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "b", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	return c, kv
}

// A replicated bucket whose cluster lost its quorum is unavailable for
// now, not broken; a conflict or a missing key is neither.
func TestIsUnavailable(t *testing.T) {
	c, kv := clusterBucket(t)
	ctx := context.Background()
	if _, err := kv.Put(ctx, "k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "k", []byte("2")); natsjs.IsUnavailable(err) {
		t.Errorf("a conflict (%v) is taken for an outage", err)
	}
	if _, err := kv.Get(ctx, "missing"); natsjs.IsUnavailable(err) {
		t.Errorf("a missing key (%v) is taken for an outage", err)
	}
	c.Stop(1)
	c.Stop(2)
	// A write may first go unanswered until its deadline (the stopped
	// leader's interest not yet dropped by the node left: CI saw it); one
	// is answered as an outage within 30 s.
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
		tctx, cancel := context.WithTimeout(ctx, natsjs.TryTimeout)
		_, err = kv.Put(tctx, "k", []byte("3"))
		cancel()
		if err == nil {
			t.Fatal("a write without a quorum succeeded")
		}
		if natsjs.IsUnavailable(err) || !errors.Is(err, context.DeadlineExceeded) || time.Now().After(deadline) {
			break
		}
	}
	if !natsjs.IsUnavailable(err) {
		t.Fatalf("a write without a quorum: %v, want an outage", err)
	}
	t.Logf("without a quorum: %v", err)
	// What a node answers while its cluster elects a leader (the soak's
	// pool met it on a lease).
	electing := &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
	if !natsjs.IsUnavailable(fmt.Errorf("pool: update VM x: %w", electing)) {
		t.Errorf("%v is not taken for an outage", electing)
	}
	// What a bucket's Get (a direct get) returns for the same status: text.
	directGet := fmt.Errorf("nats: %s", "JetStream system temporarily unavailable")
	if !natsjs.IsUnavailable(fmt.Errorf("pool: read VM x: %w", directGet)) {
		t.Errorf("%v is not taken for an outage", directGet)
	}
}

// A write made while the cluster has no quorum is made again until the
// quorum is back, each call bounded by TryTimeout; a conflict, which no
// second call changes, ends it at once.
func TestRetryOutlastsAnOutage(t *testing.T) {
	c, kv := clusterBucket(t)
	ctx := context.Background()
	c.Stop(1)
	c.Stop(2)
	back := make(chan error, 1)
	go func() {
		time.Sleep(2 * natsjs.TryTimeout)
		back <- c.Start(1)
	}()
	create := func(ctx context.Context) error { _, err := kv.Create(ctx, "k", []byte("1")); return err }
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	calls, err := natsjs.Retry(rctx, create)
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	// A call without an answer may still be written once the quorum is
	// back: the next one then finds the key (its caller's own write).
	if err != nil && !(natsjs.IsConflict(err) && calls >= 2) || calls < 2 {
		t.Fatalf("after %d calls in %v: %v; want the write once the quorum is back", calls, time.Since(start), err)
	}
	// A direct get may be answered by a replica still catching up.
	var e jetstream.KeyValueEntry
	var gerr error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if e, gerr = kv.Get(ctx, "k"); gerr == nil || time.Now().After(deadline) {
			break
		}
	}
	if gerr != nil || string(e.Value()) != "1" {
		t.Fatalf("the key after the outage: %v", gerr)
	}
	t.Logf("written after %d calls in %v (last: %v)", calls, time.Since(start).Round(time.Millisecond), err)
	if calls, err := natsjs.Retry(rctx, create); !natsjs.IsConflict(err) || calls != 1 {
		t.Fatalf("a conflict: %d calls, %v", calls, err)
	}
	// A context that ends stops it, with the last error.
	c.Stop(1)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := natsjs.Retry(sctx, func(ctx context.Context) error { _, err := kv.Put(ctx, "k", []byte("2")); return err }); err == nil {
		t.Fatal("a write without a quorum succeeded")
	}
}
