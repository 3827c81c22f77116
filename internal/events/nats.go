// Package events publishes build lifecycle events on NATS:
// <prefix>.<workspace>.build.{started,completed,failed}. With a JetStream
// stream covering the subject, events go to JetStream with Nats-Msg-Id =
// build id + event, so a re-published event is dropped as a duplicate.
//
// Events never fail or stall a build: the connection is tried once, within a
// bounded time, and a NATS that is down costs one warning per build.
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

	mu     sync.Mutex
	nc     *nats.Conn
	js     jetstream.JetStream
	down   bool
	warned bool
	stream map[string]bool // subject → covered by a stream
}

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

// Publish sends e. Failures are logged once and never returned.
func (p *Publisher) Publish(ctx context.Context, e pipeline.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.connect(); err != nil {
		p.warn("NATS unavailable; lifecycle events are not published", err)
		return
	}
	body, err := json.Marshal(e)
	if err != nil {
		p.opts.Logger.Error("encoding event", "err", err)
		return
	}
	subj := Subject(p.opts.Prefix, e.Workspace, e.Name)
	if err := p.send(ctx, subj, e.BuildID+"."+e.Name, body); err != nil {
		// A slow or failing server is not waited for again during this process.
		p.down = true
		p.warn("publishing "+subj+" failed; further events are dropped", err)
	}
}

func (p *Publisher) connect() error {
	if p.down {
		return errors.New("down")
	}
	if p.nc != nil {
		return nil
	}
	nc, err := nats.Connect(p.opts.URL, nats.Timeout(p.opts.ConnectTimeout), nats.Name("lian-build"),
		nats.MaxReconnects(0), nats.NoCallbacksAfterClientClose())
	if err != nil {
		p.down = true
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		p.down = true
		return err
	}
	p.nc, p.js = nc, js
	return nil
}

func (p *Publisher) send(ctx context.Context, subj, msgID string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.PublishTimeout)
	defer cancel()
	covered, known := p.stream[subj]
	if !known {
		_, err := p.js.StreamNameBySubject(ctx, subj)
		switch {
		case err == nil:
			covered = true
		case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, nats.ErrJetStreamNotEnabled), errors.Is(err, nats.ErrNoResponders):
			covered = false
		default:
			return err
		}
		p.stream[subj] = covered
	}
	if covered {
		msg := nats.NewMsg(subj)
		msg.Data = body
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
		_, err := p.js.PublishMsg(ctx, msg)
		return err
	}
	if err := p.nc.Publish(subj, body); err != nil {
		return err
	}
	return p.nc.FlushWithContext(ctx)
}

func (p *Publisher) warn(msg string, err error) {
	if p.warned {
		return
	}
	p.warned = true
	p.opts.Logger.Warn(msg, "url", redactURL(p.opts.URL), "err", err)
}

// Close drains the connection.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nc != nil {
		_ = p.nc.Drain()
		p.nc = nil
	}
}
