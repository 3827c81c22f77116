package pool_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pool"
)

// Two pool replicas on one NATS serve 200 lease/return cycles, 8 at a time,
// on at most 3 servers: no VM is ever leased twice, every lease is granted
// and returned, and the VMs end idle.
func TestTwoReplicas200CyclesNeverLeaseAVMTwice(t *testing.T) {
	policy := pool.Policy{MaxVMs: map[string]int{"cax11": 3}}
	w := newWorld(t, worldConfig{hosts: true, policy: policy})
	second := httptest.NewServer(w.service(t, policy).Handler(pool.HandlerOptions{Token: poolToken, Timeout: 5 * time.Minute}))
	t.Cleanup(second.Close)
	clients := []*pool.Client{w.client, {URL: second.URL, Token: poolToken}}
	const cycles, parallel = 200, 8
	var (
		mu       sync.Mutex
		holder   = map[string]string{} // VM → lease holding it
		servers  = map[int64]bool{}
		next     atomic.Int64
		reused   atomic.Int64
		errsSeen []error
	)
	fail := func(err error) {
		mu.Lock()
		errsSeen = append(errsSeen, err)
		mu.Unlock()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for p := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= cycles; n = next.Add(1) {
				c := clients[(int(n)+p)%2]
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				g, err := c.Lease(ctx, pool.Request{Tier: "cax11", Build: fmt.Sprint("cycle-", n)})
				cancel()
				if err != nil {
					fail(fmt.Errorf("cycle %d lease: %w", n, err))
					return
				}
				if g.Reused {
					reused.Add(1)
				}
				mu.Lock()
				if other, busy := holder[g.VM]; busy {
					errsSeen = append(errsSeen, fmt.Errorf("VM %s leased to %s while %s holds it", g.VM, g.LeaseID, other))
				}
				holder[g.VM], servers[g.ServerID] = g.LeaseID, true
				mu.Unlock()
				// Give it back through the other replica: the bucket is shared.
				mu.Lock()
				delete(holder, g.VM)
				mu.Unlock()
				if _, err := clients[(int(n)+p+1)%2].Return(context.Background(), g.LeaseID, "ok"); err != nil {
					fail(fmt.Errorf("cycle %d return: %w", n, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errsSeen...); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d cycles in %s (%.0f ms each, %d in parallel), %d reused, %d servers", cycles, elapsed.Round(time.Millisecond),
		float64(elapsed.Milliseconds())/cycles*parallel, parallel, reused.Load(), len(servers))
	if len(servers) > 3 {
		t.Errorf("%d servers for a tier of at most 3", len(servers))
	}
	vms, err := w.client.List(context.Background())
	if err != nil || len(vms) != len(servers) {
		t.Fatalf("VMs %+v %v", vms, err)
	}
	total := 0
	for _, v := range vms {
		if v.State != pool.StateIdle {
			t.Errorf("VM %s is %s", v.ID, v.State)
		}
		total += v.Leases
	}
	if total != cycles {
		t.Errorf("the VMs served %d leases, want %d", total, cycles)
	}
	w.drainAndCheckKeys(t, 1)
}

// The API refuses a request without the pool's bearer token, and says why.
func TestRequestWithoutTokenGets401(t *testing.T) {
	w := newWorld(t, worldConfig{})
	for _, auth := range []string{"", "Bearer wrong", "Basic " + poolToken, poolToken} {
		req, _ := http.NewRequest(http.MethodPost, w.srv.URL+pool.PathLeases, strings.NewReader(`{"tier":"cax11"}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("Authorization %q: %d %v", auth, resp.StatusCode, resp.Header)
		}
	}
	bad := &pool.Client{URL: w.srv.URL, Token: "nope"}
	_, err := bad.List(context.Background())
	var ae *pool.APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(ae.Msg, "bearer token") {
		t.Errorf("client error %v", err)
	}
	_, err = w.client.Lease(context.Background(), pool.Request{Tier: "cax99"})
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "tier" {
		t.Errorf("a bad tier: %v", err)
	}
	if s, _ := w.fake.Counts(); s != 0 {
		t.Errorf("refused requests created %d servers", s)
	}
}
