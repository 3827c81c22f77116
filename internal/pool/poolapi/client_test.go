package poolapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A pool's URL: http(s) with a host and no credentials; plain http to
// another machine is said to send grants (private keys) in clear.
func TestCheckURL(t *testing.T) {
	for in, want := range map[string]bool{"http://127.0.0.1:8090": false, "http://localhost:8090": false, "https://pool.example": false,
		"http://pool.example:8090": true, "http://10.0.0.5:8090": true,
		"http://127.0.0.1:1,http://127.0.0.1:2": false, "https://a.example, http://b.example": true} {
		if clear, err := CheckURL(in); err != nil || clear != want {
			t.Errorf("CheckURL(%q) = %v, %v; want %v", in, clear, err, want)
		}
	}
	for _, bad := range []string{"ftp://x", "pool:8090", "http://127.0.0.1:1,", "http://127.0.0.1:1,pool:8090", "http://", "http://u:SECRETPW@pool:1"} {
		_, err := CheckURL(bad)
		if err == nil || strings.Contains(err.Error(), "SECRETPW") {
			t.Errorf("CheckURL(%q) = %v", bad, err)
		}
	}
	for _, bad := range []string{"", "tok ", " tok", "t\nok", "t\x00k"} {
		if CheckToken(bad) == nil {
			t.Errorf("CheckToken(%q) accepted", bad)
		}
	}
}

// A call goes on to the next replica only when one refuses the
// connection: a replica that answers, even with an error, is the answer.
func TestClientGoesOnToTheNextReplica(t *testing.T) {
	var calls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"bad token"}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"retired":["vm-1"]}`)
	}))
	defer up.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	ctx := context.Background()
	got, err := (&Client{URL: down + "," + up.URL, Token: "tok"}).Drain(ctx)
	if err != nil || len(got) != 1 || got[0] != "vm-1" || calls.Load() != 1 {
		t.Fatalf("down replica first: %v %v (%d calls to the live one)", got, err, calls.Load())
	}
	var ae *APIError
	_, err = (&Client{URL: up.URL + "," + down, Token: "wrong"}).Drain(ctx)
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || calls.Load() != 2 {
		t.Fatalf("an answering replica's error: %v (%d calls)", err, calls.Load())
	}
	if _, err := (&Client{URL: down, Token: "tok"}).Drain(ctx); err == nil || !refused(err) {
		t.Fatalf("every replica down: %v", err)
	}
}

// A lease goes on to the next replica when one breaks the connection
// before answering (a replica killed mid-lease); a return does not (the
// dead replica may have done it).
func TestLeaseGoesOnPastAReplicaThatBreaksOff(t *testing.T) {
	var broken atomic.Int32
	dying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		broken.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer dying.Close()
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"lease_id":"pl-1","vm":"vm-1","outcome":"ok"}`)
	}))
	defer live.Close()
	c := &Client{URL: dying.URL + "," + live.URL, Token: "tok"}
	g, err := c.Lease(context.Background(), Request{Tier: "cax11"})
	if err != nil || g.LeaseID != "pl-1" || broken.Load() != 1 {
		t.Fatalf("lease: %+v %v (%d broken calls)", g, err, broken.Load())
	}
	if _, err := c.Return(context.Background(), "pl-1", "ok"); err == nil || broken.Load() != 2 {
		t.Fatalf("a return went on past a replica that may have done it: %v (%d broken calls)", err, broken.Load())
	}
}

// A call the pool refuses because its store is out of reach (503,
// store_unavailable: a NATS node down, a leader being elected) is made
// again after its Retry-After, with the same request id; a full pool's 503
// is the answer. The system soak saw two builds fail on such a lease.
func TestCallRetriedWhileTheStoreIsUnavailable(t *testing.T) {
	var calls atomic.Int32
	ids := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req Request
		_ = json.NewDecoder(r.Body).Decode(&req)
		ids[req.RequestID] = true
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"error":"the pool's store is unavailable for now: nats: JetStream system temporarily unavailable","code":%q}`, CodeStoreUnavailable)
			return
		}
		fmt.Fprint(w, `{"lease_id":"pl-1","vm":"vm-1"}`)
	}))
	defer srv.Close()
	start := time.Now()
	g, err := (&Client{URL: srv.URL, Token: "tok"}).Lease(context.Background(), Request{Tier: "cax11"})
	if err != nil || g.LeaseID != "pl-1" || calls.Load() != 3 || len(ids) != 1 {
		t.Fatalf("lease %+v, %v after %d calls with %d request ids; want it on the third call, one id", g, err, calls.Load(), len(ids))
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("retried after %s in all, want each Retry-After (1 s) honoured", took)
	}

	calls.Store(0)
	full := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"pool: no VM free: cax11"}`)
	}))
	defer full.Close()
	_, err = (&Client{URL: full.URL, Token: "tok"}).Lease(context.Background(), Request{Tier: "cax11"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || calls.Load() != 1 {
		t.Fatalf("a full pool: %v after %d calls, want its 503 at once", err, calls.Load())
	}
}

// A lease that finds no replica answering (every one restarting) goes
// round them again, each second, for ReplicasDown: the soak saw a build
// fail whose lease met one replica down and the other killed mid-lease. A
// drain does not wait (`pool drain` against a pool that is down says so).
func TestLeaseOutlastsItsReplicasRestarting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"lease_id":"pl-1","vm":"vm-1"}`)
	}), ReadHeaderTimeout: time.Second}
	time.AfterFunc(2*time.Second, func() { _ = srv.ListenAndServe() })
	defer srv.Close()
	c := &Client{URL: "http://" + addr, Token: "tok", Timeouts: Timeouts{ReplicasDown: 10 * time.Second}}
	if _, err := c.Drain(context.Background()); err == nil || !refused(err) {
		t.Fatalf("a drain while the pool is down: %v, want refused at once", err)
	}
	g, err := c.Lease(context.Background(), Request{Tier: "cax11"})
	if err != nil || g.LeaseID != "pl-1" {
		t.Fatalf("a lease while the pool restarts: %+v %v", g, err)
	}
	c.Timeouts.ReplicasDown = 1500 * time.Millisecond
	c.URL = "http://127.0.0.1:1"
	start := time.Now()
	if _, err := c.Lease(context.Background(), Request{Tier: "cax11"}); err == nil || !refused(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("a lease while the pool stays down: %v after %s, want refused after ReplicasDown", err, time.Since(start))
	}
}
