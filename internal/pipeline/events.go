package pipeline

import (
	"context"
	"errors"
	"time"
)

// Event names (subject suffixes: <prefix>.<workspace>.build.<event>).
const (
	EventStarted   = "build.started"
	EventCompleted = "build.completed"
	EventFailed    = "build.failed"
	// EventAttested follows build.completed once what the build pushed is
	// signed and its attestations read back: the result then carries the
	// signature and attestation digests.
	EventAttested = "build.attested"
)

// ErrInterrupted is the cause a caller cancels a build's context with when
// it will run the build again under the same id (a gateway that stops
// requeues its running builds): the interrupted run publishes no terminal
// event, so that a build's one build.completed or build.failed is its last
// run's.
var ErrInterrupted = errors.New("interrupted; the build runs again")

// EventSchemaVersion is the version of Event's JSON (schemas/events.schema.json).
const EventSchemaVersion = 1

// Event is a lifecycle event of a build.
type Event struct {
	SchemaVersion int       `json:"schema_version"`
	Name          string    `json:"event"`
	BuildID       string    `json:"build_id"`
	Workspace     string    `json:"workspace"`
	Actor         string    `json:"actor"`
	Commit        string    `json:"commit,omitempty"`
	Ref           string    `json:"ref,omitempty"`
	Tier          string    `json:"tier"`
	SizingSource  string    `json:"sizing_source"`
	Attempt       int       `json:"attempt"`
	StartedAt     time.Time `json:"started_at"`
	Time          time.Time `json:"time"`
	Result        *Result   `json:"result,omitempty"`
}

// event builds an event of req at this point of res.
func event(name string, req Request, res Result, attempt int) Event {
	e := Event{
		SchemaVersion: EventSchemaVersion, Name: name, BuildID: req.BuildID, Workspace: req.Workspace,
		Actor: req.Actor.String(), Commit: req.Commit, Ref: req.Ref, Tier: res.Tier,
		SizingSource: string(res.SizingSource), Attempt: attempt, StartedAt: res.StartedAt, Time: time.Now().UTC(),
	}
	if name != EventStarted {
		r := res
		e.Result = &r
	}
	return e
}

// AttestedEvent is build.attested of a completed build's result.
func AttestedEvent(req Request, res Result) Event {
	return event(EventAttested, req, res, len(res.Attempts))
}

// Publisher sends lifecycle events. Publishing never fails or stalls a build:
// an implementation bounds its own delay and reports problems to its logger.
type Publisher interface {
	Publish(ctx context.Context, e Event)
}

// NopPublisher drops events.
type NopPublisher struct{}

func (NopPublisher) Publish(context.Context, Event) {}

// PublishBound bounds the delay of one event, whatever the caller's
// context: long enough for a JetStream stream to elect a new leader (5–9 s
// measured on a loaded 2-core machine) while the publisher waits for its
// acknowledgement; NATS away costs nothing (the client buffers).
const PublishBound = 10 * time.Second

// publish sends e with a bounded delay, whatever the caller's context.
func (p *Pipeline) publish(ctx context.Context, e Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), PublishBound)
	defer cancel()
	p.cfg.Events.Publish(ctx, e)
}
