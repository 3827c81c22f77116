package testenv

import (
	"context"
	"strings"
	"sync"

	"github.com/lian-build/action/internal/pipeline"
)

// Events records the lifecycle events a pipeline publishes.
type Events struct {
	mu     sync.Mutex
	events []pipeline.Event
}

// Publish records e.
func (r *Events) Publish(_ context.Context, e pipeline.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// All are the events recorded, in order.
func (r *Events) All() []pipeline.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pipeline.Event(nil), r.events...)
}

// String is their names, in order.
func (r *Events) String() string {
	var names []string
	for _, e := range r.All() {
		names = append(names, e.Name)
	}
	return strings.Join(names, " ")
}
