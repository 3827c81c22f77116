// Package natsjs holds what every lian-build JetStream user shares: the
// replication convention of its streams and buckets, how a lost
// compare-and-set reads, and the embedded nats-server a single-machine
// gateway or pool runs.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// IsUnavailable says whether err is JetStream being out of reach for now —
// its cluster without a leader or a quorum (a node down: "JetStream system
// temporarily unavailable"), the connection reconnecting, a request
// unanswered — so that the same call may succeed shortly.
func IsUnavailable(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.As(err, &apiErr) && apiErr.Code == 503 ||
		err != nil && strings.Contains(err.Error(), unavailableText)
}

// unavailableText is the description of JetStream's 503 (10008). A bucket's
// Get (a direct get) that meets it returns it as text only (nats.go's
// convertDirectGetMsgResponseToMsg: "nats: " + the status's description):
// the 60-minute soak saw pool leases fail so.
const unavailableText = "JetStream system temporarily unavailable"

// TryTimeout bounds one call that Retry makes.
const TryTimeout = 2 * time.Second

// Retry makes a call to JetStream until it succeeds, fails otherwise than
// IsUnavailable, or ctx ends, and returns how many calls it made and the
// last error. Each call has TryTimeout: one whose answer was lost (a node
// died under it, a leader was being elected) is made again, not waited on
// until ctx ends. Only calls that may be made twice belong here: a publish
// with a message id, a Create, a Get.
func Retry(ctx context.Context, call func(context.Context) error) (calls int, err error) {
	wait := 100 * time.Millisecond
	for {
		calls++
		tctx, cancel := context.WithTimeout(ctx, TryTimeout)
		err = call(tctx)
		cancel()
		lost := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
		if err == nil || !lost && !IsUnavailable(err) {
			return calls, err
		}
		select {
		case <-ctx.Done():
			return calls, err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// IsConflict says whether a key-value write lost a compare-and-set: Create
// found the key, Update or Delete at a revision found a newer one. A
// replicated bucket reports it with another error code (10164) than a
// single server's (10071).
func IsConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Replicas is how many copies JetStream keeps of a stream or bucket: 3 on a
// cluster of at least three servers (one may fail, a majority remains), 1
// on a single server.
func Replicas(nc *nats.Conn) int {
	if nc != nil && len(nc.Servers()) >= 3 {
		return 3
	}
	return 1
}

// Embedded starts a JetStream nats-server inside this process, storing in
// dir and listening on loopback only: one binary runs with nothing else.
// stop shuts it down (its data stays in dir for the next start).
func Embedded(dir string) (url string, stop func(), err error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		return "", nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return "", nil, errors.New("embedded nats-server did not start")
	}
	return ns.ClientURL(), func() { ns.Shutdown(); ns.WaitForShutdown() }, nil
}
