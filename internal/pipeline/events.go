package pipeline

import (
	"context"
	"time"
)

// Event names (subject suffixes: <prefix>.<workspace>.build.<event>).
const (
	EventStarted   = "build.started"
	EventCompleted = "build.completed"
	EventFailed    = "build.failed"
)

// Event is a lifecycle event of a build.
type Event struct {
	Name         string    `json:"event"`
	BuildID      string    `json:"build_id"`
	Workspace    string    `json:"workspace"`
	Tier         string    `json:"tier"`
	SizingSource string    `json:"sizing_source"`
	Attempt      int       `json:"attempt"`
	Time         time.Time `json:"time"`
	Result       *Result   `json:"result,omitempty"`
}

// Publisher sends lifecycle events. Publishing never fails or stalls a build:
// an implementation bounds its own delay and reports problems to its logger.
type Publisher interface {
	Publish(ctx context.Context, e Event)
}

// NopPublisher drops events.
type NopPublisher struct{}

func (NopPublisher) Publish(context.Context, Event) {}

// publish sends e with a bounded delay, whatever the caller's context.
func (p *Pipeline) publish(ctx context.Context, e Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	p.cfg.Events.Publish(ctx, e)
}
