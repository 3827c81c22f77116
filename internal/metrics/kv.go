package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lian-build/action/internal/natsjs"
)

// Bucket is the JetStream key-value bucket of the histories.
const Bucket = "lian-build-metrics"

// KVStore keeps histories in a JetStream key-value bucket, shared between machines.
type KVStore struct{ KV jetstream.KeyValue }

// OpenKV opens (or creates) the bucket.
func OpenKV(ctx context.Context, js jetstream.JetStream) (KVStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, History: 1, Description: "lian-build P95 history per workspace", Replicas: natsjs.Replicas(js.Conn())})
	if err != nil {
		return KVStore{}, fmt.Errorf("metrics bucket %s: %w", Bucket, err)
	}
	return KVStore{KV: kv}, nil
}

// Get implements Store.
func (s KVStore) Get(ctx context.Context, ws string) (History, error) {
	h, _, err := s.get(ctx, ws)
	return h, err
}

func (s KVStore) get(ctx context.Context, ws string) (History, uint64, error) {
	h := History{Workspace: ws}
	e, err := s.KV.Get(ctx, keyOf(ws))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return h, 0, nil
	}
	if err != nil {
		return h, 0, err
	}
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return h, 0, fmt.Errorf("metrics %s: %w", keyOf(ws), err)
	}
	return h, e.Revision(), nil
}

// Update implements Store with optimistic concurrency: a concurrent writer
// makes the revision check fail, and the update is redone on fresh data.
func (s KVStore) Update(ctx context.Context, ws string, fn func(*History)) error {
	for attempt := 0; attempt < 50; attempt++ {
		if attempt > 0 {
			// Jittered backoff: concurrent writers spread out instead of colliding again.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(1+rand.IntN(5*attempt)) * time.Millisecond):
			}
		}
		h, rev, err := s.get(ctx, ws)
		if err != nil {
			return err
		}
		fn(&h)
		b, err := json.Marshal(h)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = s.KV.Create(ctx, keyOf(ws), b)
		} else {
			_, err = s.KV.Update(ctx, keyOf(ws), b, rev)
		}
		if err == nil {
			return nil
		}
		if !natsjs.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("metrics %s: too many concurrent updates", keyOf(ws))
}

// Workspaces implements Store: the workspaces with a recorded history.
func (s KVStore) Workspaces(ctx context.Context) ([]string, error) {
	keys, err := s.KV.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range keys.Keys() {
		if ws, ok := strings.CutPrefix(k, "ws."); ok {
			out = append(out, ws)
		}
	}
	sort.Strings(out)
	return out, nil
}
