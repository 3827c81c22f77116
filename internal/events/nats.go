// Package events publishes build lifecycle events on NATS:
// <prefix>.<workspace>.build.{started,completed,failed}. Every event
// carries Nats-Msg-Id = build id + event: a JetStream stream covering the
// subject stores it once, however often it is re-published.
//
// Events never fail or stall a build. The connection is made on first use
// within a bounded time and then kept by the client, which reconnects on its
// own: while NATS is away, events are buffered here and sent when it is
// back, and an outage costs one warning (and one note when events resume).
// No lock is held while talking to the server, and nothing is asked of the
// client while it is away: its reconnect attempts hold its own lock for up
// to ConnectTimeout each, and an event must not wait for one.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/lian-build/action/internal/pipeline"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPrefix is the subject prefix unless configured.
const DefaultPrefix = "lian-build"

// Options configure a Publisher.
type Options struct {
	URL            string
	Prefix         string        // default "lian-build"
	ConnectTimeout time.Duration // default 1s
	PublishTimeout time.Duration // default 500ms (JetStream ack)
	Logger         *slog.Logger
}

// Publisher implements pipeline.Publisher over NATS.
type Publisher struct {
	opts Options

	mu      sync.Mutex // guards the fields below; never held during network I/O but the first connect
	nc      *nats.Conn
	js      jetstream.JetStream
	up      bool            // connected, as the client's callbacks last said
	pending []*nats.Msg     // published while away, oldest first; sent on reconnect
	dropped int             // pending messages dropped for room this outage
	outage  bool            // the last publish failed; warned
	stream  map[string]bool // subject → covered by a stream
}

// MaxPending bounds the events held while NATS is away; past it the
// oldest go.
const MaxPending = 1000

// New returns a publisher; it connects on first use.
func New(opts Options) *Publisher {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = time.Second
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Publisher{opts: opts, stream: map[string]bool{}}
}

// Subject is where an event goes.
func Subject(prefix, workspace, event string) string {
	return prefix + "." + workspace + "." + event
}

// errBuffered is an event held until NATS is back.
var errBuffered = errors.New("not connected; the event is buffered until NATS is back")

// Publish sends e. Failures are logged once per outage and never returned.
func (p *Publisher) Publish(ctx context.Context, e pipeline.Event) {
	p.publish(ctx, Subject(p.opts.Prefix, e.Workspace, e.Name), e.BuildID+"."+e.Name, e)
}

// PublishJSON sends v as JSON on <prefix>.<subject> with the message id
// given (a stream stores it once), as Publish does: never failing, buffered
// while NATS is away.
func (p *Publisher) PublishJSON(ctx context.Context, subject, msgID string, v any) {
	p.publish(ctx, p.opts.Prefix+"."+subject, msgID, v)
}

func (p *Publisher) publish(ctx context.Context, subject, msgID string, v any) {
	nc, js, err := p.conn()
	if err != nil {
		p.failed("NATS unavailable; lifecycle events are not published", err)
		return
	}
	body, err := json.Marshal(v)
	if err != nil {
		p.opts.Logger.Error("encoding event", "err", err)
		return
	}
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	if p.hold(msg) {
		p.failed("publishing "+msg.Subject+" failed", errBuffered)
		return
	}
	if err := p.send(ctx, nc, js, msg); err != nil {
		p.failed("publishing "+msg.Subject+" failed", err)
		return
	}
	p.resumed()
}

// conn is the connection, made on first use. The client keeps it: it
// reconnects by itself, forever, and buffers what is published meanwhile.
func (p *Publisher) conn() (*nats.Conn, jetstream.JetStream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nc != nil {
		return p.nc, p.js, nil
	}
	nc, err := nats.Connect(p.opts.URL, nats.Timeout(p.opts.ConnectTimeout), nats.Name("lian-build"),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.DrainTimeout(2*time.Second), nats.NoCallbacksAfterClientClose(),
		nats.ConnectHandler(p.back), nats.ReconnectHandler(p.back),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { p.away() }))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	// A failed first connect is retried after ReconnectWait: no attempt
	// holds the client yet.
	p.nc, p.js, p.up = nc, js, nc.IsConnected()
	return nc, js, nil
}

// hold keeps msg for later if NATS is away; it says whether it did.
func (p *Publisher) hold(msg *nats.Msg) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.up {
		return false
	}
	if len(p.pending) == MaxPending {
		p.pending = p.pending[1:]
		p.dropped++
	}
	p.pending = append(p.pending, msg)
	return true
}

// away is the client's word that the connection is lost.
func (p *Publisher) away() {
	p.mu.Lock()
	p.up = false
	p.mu.Unlock()
}

// back is the client's word that it is connected (again): what was held
// is sent, oldest first. The message ids let a stream drop a duplicate.
func (p *Publisher) back(nc *nats.Conn) {
	p.mu.Lock()
	p.up = true
	held, dropped := p.pending, p.dropped
	p.pending, p.dropped = nil, 0
	p.mu.Unlock()
	for _, m := range held {
		if err := nc.PublishMsg(m); err != nil {
			p.opts.Logger.Warn("sending an event held while NATS was away", "subject", m.Subject, "err", err)
		}
	}
	if dropped > 0 {
		p.opts.Logger.Warn("events dropped while NATS was away", "dropped", dropped, "kept", MaxPending)
	}
	if len(held) > 0 {
		_ = nc.FlushTimeout(p.opts.PublishTimeout)
	}
}

func (p *Publisher) send(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, msg *nats.Msg) error {
	if !nc.IsConnected() { // lost, and the callback saying so not run yet
		// The message id still lets a stream drop a duplicate later.
		if err := nc.PublishMsg(msg); err != nil {
			return err
		}
		return errBuffered
	}
	cctx, cancel := context.WithTimeout(ctx, p.opts.PublishTimeout)
	defer cancel()
	// A lookup JetStream does not answer (a leader being elected) is taken
	// for a stream: NATS without JetStream, or without a stream for the
	// subject, answers it at once.
	if covered, err := p.covered(cctx, js, msg.Subject); covered || err != nil {
		err := p.publishStored(ctx, js, msg, covered)
		if errors.Is(err, jetstream.ErrNoStreamResponse) && !covered {
			return p.publishCore(ctx, nc, msg) // no stream takes it after all
		}
		if err != nil {
			p.forget(msg.Subject) // the stream may be gone: asked again next time
		}
		return err
	}
	return p.publishCore(ctx, nc, msg)
}

// publishCore publishes msg without waiting for a stream; it waits
// PublishTimeout at most for the server to have it.
func (p *Publisher) publishCore(ctx context.Context, nc *nats.Conn, msg *nats.Msg) error {
	if err := nc.PublishMsg(msg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.PublishTimeout)
	defer cancel()
	return nc.FlushWithContext(ctx)
}

// StoreBound bounds how long an event waits for its stream (it waits
// less when the caller's context says so).
const StoreBound = 10 * time.Second

// publishStored publishes msg to its stream and waits for the stream's
// acknowledgement. A try that gets none within PublishTimeout (its leader
// is away, a new one being elected) is made again, with the same message
// id, which the stream stores once, until ctx ends or StoreBound passes.
// "No response from stream" (no responders) ends it at once unless the
// subject is known to be covered (then it is a stream between leaders).
func (p *Publisher) publishStored(ctx context.Context, js jetstream.JetStream, msg *nats.Msg, covered bool) error {
	ctx, cancelAll := context.WithTimeout(ctx, StoreBound)
	defer cancelAll()
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		tctx, cancel := context.WithTimeout(ctx, p.opts.PublishTimeout)
		_, err := js.PublishMsg(tctx, msg)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrNoStreamResponse) && !covered {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// covered says whether a JetStream stream takes subj (asked once per subject).
func (p *Publisher) covered(ctx context.Context, js jetstream.JetStream, subj string) (bool, error) {
	p.mu.Lock()
	covered, known := p.stream[subj]
	p.mu.Unlock()
	if known {
		return covered, nil
	}
	_, err := js.StreamNameBySubject(ctx, subj)
	switch {
	case err == nil:
		covered = true
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, nats.ErrJetStreamNotEnabled), errors.Is(err, nats.ErrNoResponders):
		covered = false
	default:
		return false, err
	}
	p.mu.Lock()
	p.stream[subj] = covered
	p.mu.Unlock()
	return covered, nil
}

// forget drops what covered knows of subj.
func (p *Publisher) forget(subj string) {
	p.mu.Lock()
	delete(p.stream, subj)
	p.mu.Unlock()
}

// failed warns once per outage.
func (p *Publisher) failed(msg string, err error) {
	p.mu.Lock()
	first := !p.outage
	p.outage = true
	p.mu.Unlock()
	if first {
		p.opts.Logger.Warn(msg+"; events resume when NATS is back", "url", redactURL(p.opts.URL), "err", err)
	}
}

// resumed notes the end of an outage.
func (p *Publisher) resumed() {
	p.mu.Lock()
	was := p.outage
	p.outage = false
	p.mu.Unlock()
	if was {
		p.opts.Logger.Info("NATS is back; lifecycle events are published again", "url", redactURL(p.opts.URL))
	}
}

// Close sends what is buffered if NATS is there (within 2 s) and closes.
func (p *Publisher) Close() {
	p.mu.Lock()
	nc, up := p.nc, p.up
	p.nc = nil
	p.mu.Unlock()
	if nc == nil {
		return
	}
	if up {
		p.back(nc) // held events the callback has not sent yet
		_ = nc.FlushTimeout(2 * time.Second)
	}
	nc.Close()
}

// status is whether the client last said it is connected, and how many
// events wait for NATS to be back.
func (p *Publisher) status() (up bool, held int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up, len(p.pending)
}
