package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/sizing"
)

// The events match schemas/events.schema.json: every required field is there,
// enums hold, and nothing undocumented appears at the top level.
func TestEventsMatchTheirSchema(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "schemas", "events.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Required   []string                  `json:"required"`
		Properties map[string]map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	req := Request{BuildID: "b1", Workspace: "app", Actor: cache.Actor{Kind: cache.ActorCI}}
	res := Result{BuildID: "b1", Tier: "cax21", SizingSource: sizing.SourceSpec, Outcome: OutcomeSuccess, StartedAt: time.Now()}
	var events []Event
	for _, name := range []string{EventStarted, EventCompleted, EventFailed, EventAttested} {
		events = append(events, event(name, req, res, 1))
	}
	// A build abandoned before it was sized.
	rec := &recordedEvents{}
	p, err := New(Config{Provider: namedProvider{}, Events: rec})
	if err != nil {
		t.Fatal(err)
	}
	p.Abandon(context.Background(), req, errors.New("git fetch: exit status 128"))
	for _, e := range append(events, rec.events...) {
		name := e.Name
		b, _ := json.Marshal(e)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range schema.Required {
			if _, ok := m[k]; !ok {
				t.Errorf("%s lacks required %q", name, k)
			}
		}
		for k := range m {
			if _, ok := schema.Properties[k]; !ok {
				t.Errorf("%s has %q, which the schema does not document", name, k)
			}
		}
		if enum, ok := schema.Properties["event"]["enum"].([]any); !ok || !contains(enum, m["event"]) {
			t.Errorf("event %v not in the schema's enum", m["event"])
		}
		if enum := schema.Properties["sizing_source"]["enum"].([]any); !contains(enum, m["sizing_source"]) {
			t.Errorf("sizing_source %v not in the schema's enum", m["sizing_source"])
		}
		if (name == EventStarted) == (m["result"] != nil) {
			t.Errorf("%s: result present = %v", name, m["result"] != nil)
		}
	}
}

func contains(list []any, v any) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
