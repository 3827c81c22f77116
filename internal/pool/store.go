package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lian-build/action/internal/natsjs"
)

// Store is the pool's state: one KV entry per VM, changed by
// compare-and-set only.
type Store struct {
	kv jetstream.KeyValue
}

// entry is a VM with the revision it was read at.
type entry struct {
	VM
	rev uint64
}

// ErrConflict is a compare-and-set that lost: someone changed the VM first.
var ErrConflict = errors.New("pool: the VM changed meanwhile")

// OpenStore opens (creating it if needed) the bucket of the pool named name.
func OpenStore(ctx context.Context, js jetstream.JetStream, name string) (*Store, error) {
	bucket := "lian_pool_" + name
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 1,
		Description: "lian-build VM pool " + name + ": VMs and leases", Replicas: natsjs.Replicas(js.Conn())})
	if err != nil {
		return nil, fmt.Errorf("pool bucket %s: %w", bucket, err)
	}
	return &Store{kv: kv}, nil
}

func key(id string) string { return "vm." + id }

// All reads every VM; an entry that does not decode is an error, never skipped.
func (s *Store) All(ctx context.Context) ([]entry, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []entry
	for k := range lister.Keys() {
		if !strings.HasPrefix(k, "vm.") {
			continue
		}
		e, err := s.get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *Store) get(ctx context.Context, k string) (entry, error) {
	kve, err := s.kv.Get(ctx, k)
	if err != nil {
		return entry{}, err
	}
	var v VM
	if err := json.Unmarshal(kve.Value(), &v); err != nil {
		return entry{}, fmt.Errorf("pool %s: %w", k, err)
	}
	return entry{VM: v, rev: kve.Revision()}, nil
}

// Get reads one VM.
func (s *Store) Get(ctx context.Context, id string) (entry, error) { return s.get(ctx, key(id)) }

// Create adds a VM that must not exist yet.
func (s *Store) Create(ctx context.Context, v VM) (entry, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return entry{}, err
	}
	rev, err := s.kv.Create(ctx, key(v.ID), b)
	if err != nil {
		return entry{}, fmt.Errorf("pool: add VM %s: %w", v.ID, err) // jetstream.ErrKeyExists when taken
	}
	return entry{VM: v, rev: rev}, nil
}

// Update writes v over the entry read at e.rev: ErrConflict when it changed.
func (s *Store) Update(ctx context.Context, e entry, v VM) (entry, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return entry{}, err
	}
	rev, err := s.kv.Update(ctx, key(v.ID), b, e.rev)
	if natsjs.IsConflict(err) {
		return entry{}, ErrConflict
	}
	if err != nil {
		return entry{}, fmt.Errorf("pool: update VM %s: %w", v.ID, err)
	}
	return entry{VM: v, rev: rev}, nil
}

// Delete removes the entry read at e.rev: ErrConflict when it changed.
func (s *Store) Delete(ctx context.Context, e entry) error {
	err := s.kv.Delete(ctx, key(e.ID), jetstream.LastRevision(e.rev))
	if natsjs.IsConflict(err) {
		return ErrConflict
	}
	return err
}

// drainingKey marks a pool draining: no idle VM is topped up and every
// returned VM is retired, so that the pool ends with none once its leases
// end. It is not a VM ("vm." keys are).
const drainingKey = "pool.draining"

// SetDraining starts (true) or ends a drain.
func (s *Store) SetDraining(ctx context.Context, on bool) error {
	if !on {
		err := s.kv.Delete(ctx, drainingKey)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		return err
	}
	_, err := s.kv.Put(ctx, drainingKey, []byte("1"))
	return err
}

// Draining reports whether the pool is draining.
func (s *Store) Draining(ctx context.Context) (bool, error) {
	_, err := s.kv.Get(ctx, drainingKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return false, nil
	}
	return err == nil, err
}
