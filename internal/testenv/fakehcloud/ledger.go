package fakehcloud

import (
	"sort"
	"sync"
	"time"
)

// Ledger is Hetzner's hourly billing of servers: every started hour of a
// server's life is billed whole (the monthly cap is out of scope: a runner
// lives for hours, not weeks). The fake keeps one for the servers it makes;
// a simulation on a virtual clock keeps its own.
type Ledger struct {
	mu      sync.Mutex
	entries map[int64]*LedgerEntry
}

// LedgerEntry is one server's life.
type LedgerEntry struct {
	ServerID int64
	Type     string
	Created  time.Time
	Deleted  time.Time // zero while it lives
}

// Open records a server created at at.
func (l *Ledger) Open(id int64, serverType string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.entries == nil {
		l.entries = map[int64]*LedgerEntry{}
	}
	l.entries[id] = &LedgerEntry{ServerID: id, Type: serverType, Created: at}
}

// Close records a server deleted at at.
func (l *Ledger) Close(id int64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[id]; e != nil && e.Deleted.IsZero() {
		e.Deleted = at
	}
}

// BilledMinutes is what every server costs up to now (a live one is billed
// for the hour it is in), by server type, and the total.
func (l *Ledger) BilledMinutes(now time.Time) (map[string]int64, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	by, total := map[string]int64{}, int64(0)
	for _, e := range l.entries {
		end := e.Deleted
		if end.IsZero() {
			end = now
		}
		hours := int64(1)
		if alive := end.Sub(e.Created); alive > 0 {
			hours = int64((alive + time.Hour - 1) / time.Hour)
		}
		by[e.Type] += hours * 60
		total += hours * 60
	}
	return by, total
}

// Entries are the servers recorded, by id.
func (l *Ledger) Entries() []LedgerEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LedgerEntry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ServerID < out[j].ServerID })
	return out
}
