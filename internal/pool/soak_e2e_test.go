package pool_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

// soak is the soak's bookkeeping, shared by its workers.
type soak struct {
	mu       sync.Mutex
	holder   map[string]string // VM → the lease holding it
	leases   map[string]int    // lease → returns answered
	faults   map[string]int    // injected, by kind
	refused  map[string]int    // leases refused by an injected fault, by code
	outcomes map[string]int
	warm     int       // leases that started on a generation of their namespaces
	killed   time.Time // when a runner host was last killed
	waits    []time.Duration
	errs     []error
}

func (s *soak) fail(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

// injectedCodes are what the fake answers for the faults the soak injects.
var injectedCodes = []string{"resource_unavailable", "rate_limit_exceeded", "service_error", "runner host"}

// The pool under load and faults: two replicas share the bucket; workers
// lease (ci and sessions, asking for warm state of a few workspaces), hold,
// and return with random outcomes, synchronously or not, through either
// replica; meanwhile the fake Hetzner API answers 5xx, 429 with
// RateLimit-Reset and resource_unavailable, and runner hosts die. At the
// end: no VM was ever leased twice, every granted lease was returned once,
// nothing waits forever, and after a drain there is no server, key, host
// or network namespace; the process's goroutines, open files and resident
// memory are back within a bound of their values after warm-up
// (testenv.Usage.Grown).
// `make soak DURATION=10m SEED=N` runs it longer.
func TestPoolSoak(t *testing.T) {
	duration, seed := testenv.SoakConfig(t, 90*time.Second)
	t.Logf("soak: %s, seed %d (LIAN_SOAK_SEED=%d reproduces the choices)", duration, seed, seed)
	policy := pool.Policy{MaxVMs: map[string]int{"cax11": 3, "cax21": 2}, KeepWarm: time.Hour, AwaitRecycling: 10 * time.Second, Upsize: true}
	w := newWorld(t, worldConfig{hosts: true, policy: policy})
	svc2 := w.service(t, policy)
	second := httptest.NewServer(svc2.Handler(pool.HandlerOptions{Token: poolToken, Timeout: 5 * time.Minute}))
	t.Cleanup(second.Close)
	clients := []*pool.Client{w.client, {URL: second.URL, Token: poolToken}}
	s := &soak{holder: map[string]string{}, leases: map[string]int{}, faults: map[string]int{}, refused: map[string]int{}, outcomes: map[string]int{}}
	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { s.inject(ctx, w, rand.New(rand.NewPCG(seed, 1))) })
	for i := range 5 {
		rng := rand.New(rand.NewPCG(seed, uint64(i+2)))
		wg.Go(func() { s.work(ctx, clients, rng, i) })
	}
	time.Sleep(min(duration/4, 20*time.Second))
	baseline, err := testenv.UsageOf(0)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	w.svc.Wait()
	svc2.Wait()
	s.report(t, w)
	if err := errors.Join(s.errs...); err != nil {
		t.Fatal(err)
	}
	for l, n := range s.leases {
		if n != 1 {
			t.Errorf("lease %s was returned %d times", l, n)
		}
	}
	w.drainAndCheckKeys(t, 1)
	end, err := testenv.UsageOf(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the pool's process after warm-up: %s; after the drain: %s", baseline, end)
	if grown := end.Grown(baseline); grown != "" {
		t.Errorf("the pool's process grew past its bound: %s", grown)
	}
}

// work is one worker's loop until ctx ends.
func (s *soak) work(ctx context.Context, clients []*pool.Client, rng *rand.Rand, id int) {
	for n := 0; ctx.Err() == nil; n++ {
		req := pool.Request{Tier: []string{"cax11", "cax11", "cax21"}[rng.IntN(3)], Build: fmt.Sprintf("soak-%d-%d", id, n), TTLSeconds: 600}
		ws := fmt.Sprintf("ws%d", rng.IntN(4))
		switch rng.IntN(4) {
		case 0:
			req.Class, req.State = "human", &pool.StateRequest{Read: []string{"dev/u-" + ws, "ci/" + ws}, Write: "dev/u-" + ws}
		case 1:
			req.Class = "ci"
		default:
			req.Class, req.State = "ci", &pool.StateRequest{Read: []string{"ci/" + ws}, Write: "ci/" + ws}
		}
		c := clients[rng.IntN(2)]
		// Longer than the pool waits for a new server's sshd (its SSH
		// timeout, 2 min): a host killed while its server is made costs
		// the lease that wait, then an SSH error the fault explains.
		lctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		start := time.Now()
		g, err := c.Lease(lctx, req)
		cancel()
		if err != nil {
			s.refusedBy(err)
			continue
		}
		s.took(g, time.Since(start))
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		ret := pool.Return{Outcome: []string{"ok", "ok", "ok", "ok", "ok", "ok", "error", "error", "oom"}[rng.IntN(9)], Async: rng.IntN(2) == 0}
		ret.Commit = ret.Outcome == "ok" && g.State != nil && g.State.Next > 0 && rng.IntN(3) > 0
		s.give(g)
		if _, err := clients[rng.IntN(2)].ReturnWith(context.Background(), g.LeaseID, ret); err != nil {
			s.fail(fmt.Errorf("return %s: %w", g.LeaseID, err))
		}
		s.mu.Lock()
		s.leases[g.LeaseID]++
		s.outcomes[ret.Outcome]++
		s.mu.Unlock()
	}
}

// refusedBy records a refused lease: one an injected fault explains is
// counted (an SSH failure after a host was killed: a VM being made on it),
// any other fails the soak.
func (s *soak) refusedBy(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, code := range injectedCodes {
		if strings.Contains(err.Error(), code) {
			s.refused[code]++
			return
		}
	}
	if !s.killed.IsZero() && time.Since(s.killed) < 3*time.Minute && strings.Contains(err.Error(), "ssh") {
		s.refused["host-killed"]++
		return
	}
	s.errs = append(s.errs, fmt.Errorf("lease refused, and no injected fault explains it: %w", err))
}

func (s *soak) took(g pool.Grant, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if other, busy := s.holder[g.VM]; busy {
		s.errs = append(s.errs, fmt.Errorf("VM %s leased to %s while %s holds it", g.VM, g.LeaseID, other))
	}
	s.holder[g.VM] = g.LeaseID
	s.leases[g.LeaseID] = 0
	if g.State != nil && g.State.Namespace != "" {
		s.warm++
	}
	s.waits = append(s.waits, wait)
}

func (s *soak) give(g pool.Grant) {
	s.mu.Lock()
	delete(s.holder, g.VM)
	s.mu.Unlock()
}

// inject adds a fault every 1–4 s until ctx ends: the API's 5xx, 429 and
// resource_unavailable on server creation, or a runner host killed.
func (s *soak) inject(ctx context.Context, w *world, rng *rand.Rand) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second + time.Duration(rng.IntN(3000))*time.Millisecond):
		}
		kind := []string{"api-500", "api-429", "resource_unavailable", "host-killed"}[rng.IntN(4)]
		switch kind {
		case "api-500":
			w.fake.Inject(fakehcloud.Fault{Method: "POST", PathPrefix: "/servers", Times: 1, Status: 500, Code: "service_error"})
		case "api-429":
			w.fake.Inject(fakehcloud.Fault{Method: "POST", PathPrefix: "/servers", Times: 1, Status: 429, Code: "rate_limit_exceeded", ResetIn: time.Second})
		case "resource_unavailable":
			w.fake.Inject(fakehcloud.Fault{Method: "POST", PathPrefix: "/servers", Times: 1, Status: 412, Code: "resource_unavailable"})
		case "host-killed":
			ids := w.hosts.IDs()
			if len(ids) == 0 {
				continue
			}
			w.hosts.Kill(ids[rng.IntN(len(ids))])
		}
		s.mu.Lock()
		s.faults[kind]++
		if kind == "host-killed" {
			s.killed = time.Now()
		}
		s.mu.Unlock()
	}
}

// report prints what the soak did.
func (s *soak) report(t *testing.T, w *world) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sort.Slice(s.waits, func(i, j int) bool { return s.waits[i] < s.waits[j] })
	p := func(q float64) time.Duration {
		if len(s.waits) == 0 {
			return 0
		}
		return s.waits[min(len(s.waits)-1, int(q*float64(len(s.waits))))].Round(time.Millisecond)
	}
	servers := 0
	for _, r := range w.fake.Requests() {
		if r.Method == "POST" && r.Path == "/servers" {
			servers++
		}
	}
	t.Logf("leases %d (outcomes %v, %d started warm), refused by injected faults %v; faults injected %v; server creates tried %d; lease wait p50 %s p99 %s",
		len(s.leases), s.outcomes, s.warm, s.refused, s.faults, servers, p(0.5), p(0.99))
}
