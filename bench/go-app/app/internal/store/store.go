// Package store keeps the service's data in memory.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"example.com/svc/internal/model"
)

// ErrNotFound is a missing record.
var ErrNotFound = errors.New("not found")

// Store holds users, items and orders.
type Store struct {
	mu     sync.RWMutex
	users  map[string]model.User
	items  map[string]model.Item
	orders map[string]model.Order
	now    func() time.Time
}

// New is an empty store.
func New() *Store {
	return &Store{users: map[string]model.User{}, items: map[string]model.Item{}, orders: map[string]model.Order{}, now: time.Now}
}

func newID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// AddUser validates and stores a user.
func (s *Store) AddUser(u model.User) (model.User, error) {
	if err := u.Validate(); err != nil {
		return u, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.users {
		if strings.EqualFold(o.Email, u.Email) {
			return u, errors.New("email taken")
		}
	}
	u.ID, u.Created = newID("usr"), s.now()
	s.users[u.ID] = u
	return u, nil
}

// User finds a user.
func (s *Store) User(id string) (model.User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[id]
	if !ok {
		return u, ErrNotFound
	}
	return u, nil
}

// PutItem stores an item by SKU.
func (s *Store) PutItem(i model.Item) error {
	if err := i.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items[i.SKU] = i
	return nil
}

// Items is a page of items by SKU, after the SKU given.
func (s *Store) Items(after string, limit int) []model.Item {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]model.Item, 0, len(s.items))
	for _, i := range s.items {
		if i.SKU > after {
			out = append(out, i)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].SKU < out[b].SKU })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// PlaceOrder prices the lines from the catalog and stores an open order.
func (s *Store) PlaceOrder(userID string, lines []model.Line) (model.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[userID]; !ok {
		return model.Order{}, ErrNotFound
	}
	o := model.Order{ID: newID("ord"), UserID: userID, Created: s.now(), Status: model.StatusOpen}
	for _, l := range lines {
		it, ok := s.items[l.SKU]
		if !ok || l.Quantity < 1 {
			return model.Order{}, errors.New("unknown item or quantity: " + l.SKU)
		}
		l.Cents = it.Cents
		o.Lines = append(o.Lines, l)
	}
	s.orders[o.ID] = o
	return o, nil
}

// Move changes an order's status when the change is allowed.
func (s *Store) Move(id string, to model.Status) (model.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return o, ErrNotFound
	}
	if !o.Status.Next(to) {
		return o, errors.New("cannot move " + string(o.Status) + " to " + string(to))
	}
	o.Status = to
	s.orders[id] = o
	return o, nil
}

// Orders is every order of a user, newest first.
func (s *Store) Orders(userID string) []model.Order {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []model.Order
	for _, o := range s.orders {
		if o.UserID == userID {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Created.After(out[b].Created) })
	return out
}
