package pool_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/testenv"
)

// hostileRequest is one row of testdata/hostile/pool.json.
type hostileRequest struct {
	Name   string   `json:"name"`
	Method string   `json:"method"`
	Path   string   `json:"path"`
	Body   string   `json:"body"`
	Status int      `json:"status"`
	Field  string   `json:"field"`
	Words  []string `json:"words"`
}

// Hostile lease requests are refused with the field named, before any
// server exists; no answer echoes a control character or a token, and
// none takes long.
func TestHostileRequests(t *testing.T) {
	rows := testenv.HostileRows[hostileRequest](t, "pool.json")
	w := newWorld(t, worldConfig{policy: pool.Policy{MaxVMs: map[string]int{"cax11": 0}}})
	for _, tt := range rows {
		t.Run(tt.Name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.Method, w.srv.URL+tt.Path, strings.NewReader(tt.Body))
			req.Header.Set("Authorization", "Bearer "+poolToken)
			start := time.Now()
			resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v", took)
			}
			if resp.StatusCode != tt.Status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.Status, body)
			}
			var ae struct{ Error, Field string }
			if err := json.Unmarshal(body, &ae); err != nil {
				t.Fatalf("answer is not JSON: %s", body)
			}
			if ae.Field != tt.Field {
				t.Errorf("field %q, want %q: %s", ae.Field, tt.Field, body)
			}
			for _, word := range tt.Words {
				if !strings.Contains(ae.Error, word) {
					t.Errorf("error lacks %q: %s", word, ae.Error)
				}
			}
			if strings.ContainsAny(ae.Error, "\x00\x1b\n") || strings.Contains(string(body), poolToken) || strings.Contains(string(body), hcToken) || len(body) > 4096 {
				t.Errorf("answer echoes control characters, a token or the whole input: %q", body)
			}
		})
	}
	if s, _ := w.fake.Counts(); s != 0 {
		t.Errorf("refused requests created %d servers", s)
	}
}

// Concurrent returns of one lease: one recycles the VM, the others get the
// idempotent answer (200, already returned), none an error; a lease of the
// max-ttl plus one second is refused, one at the max lives its whole life.
func TestConcurrentReturnsAreIdempotent(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	ctx := t.Context()
	g, err := w.client.Lease(ctx, pool.Request{Tier: "cax11", TTLSeconds: int64(pool.MaxTTL / time.Second), Location: "fsn1"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Location != "fsn1" || g.Expires.Before(time.Now().Add(pool.MaxTTL-time.Minute)) {
		t.Errorf("grant %s until %v", g.Location, g.Expires)
	}
	if err := w.svc.Upkeep(ctx); err != nil {
		t.Fatal(err)
	}
	if vms, _ := w.client.List(ctx); len(vms) != 1 || vms[0].State != pool.StateLeased {
		t.Fatalf("upkeep touched a live lease: %+v", vms)
	}
	type answer struct {
		d   pool.Disposition
		err error
	}
	answers := make(chan answer, 5)
	for range 5 {
		go func() {
			d, err := w.client.Return(ctx, g.LeaseID, "ok")
			answers <- answer{d, err}
		}()
	}
	kept := 0
	for range 5 {
		a := <-answers
		var ae *pool.APIError
		if errorsAs(a.err, &ae) && ae.Status == http.StatusNotFound {
			continue // came after the first had finished: no such lease now
		}
		if a.err != nil {
			t.Errorf("a concurrent return failed: %v", a.err)
		}
		if a.d.Kept {
			kept++
		} else if a.d.Reason != "already returned" {
			t.Errorf("disposition %+v", a.d)
		}
	}
	if kept != 1 {
		t.Errorf("%d returns recycled the VM, want 1", kept)
	}
	w.drainAndCheck(t)
}

// Replicas started at once race to register the pool's key: every one
// starts, with the one key, named without a '/' or '+'.
func TestReplicasStartedTogether(t *testing.T) {
	w := newWorld(t, worldConfig{})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			hc, err := hcloud.New(hcloud.Settings{Token: hcToken, Endpoint: w.fake.Endpoint(), Locations: []string{"fsn1"}})
			if err != nil {
				errs <- err
				return
			}
			store, err := pool.OpenStore(t.Context(), w.js, "race")
			if err != nil {
				errs <- err
				return
			}
			svc, err := pool.New(pool.Options{Name: "race", Clouds: map[string]pool.Cloud{"arm": hc}, Signer: signer, Store: store})
			if err == nil {
				err = svc.Start(t.Context())
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("a replica did not start: %v", err)
		}
	}
	if _, keys := w.fake.Counts(); keys != 2 {
		t.Errorf("%d keys registered, want the two pools' one each", keys)
	}
	for _, name := range w.fake.KeyNames() {
		if strings.ContainsAny(name, "/+=") {
			t.Errorf("key name %q", name)
		}
	}
}

// A drain stops the refill: idle VMs are retired and none is topped up, a
// VM returned while draining is retired, and the hcloud provider lists the
// pool's servers as the pool's (runners gc leaves them). Resume refills.
func TestDrainStopsRefillingUntilResume(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true, policy: pool.Policy{MinIdle: map[string]int{"cax11": 1}}})
	ctx := t.Context()
	if err := w.svc.Upkeep(ctx); err != nil {
		t.Fatal(err)
	}
	hc, err := hcloud.New(hcloud.Settings{Token: hcToken, Endpoint: w.fake.Endpoint(), Locations: []string{"fsn1"}})
	if err != nil {
		t.Fatal(err)
	}
	infos, err := hc.List(ctx)
	if err != nil || len(infos) != 1 || infos[0].Pool != "test" || infos[0].Orphan {
		t.Fatalf("runners ls of the pool's server: %+v %v", infos, err)
	}
	if removed, err := hc.GC(ctx); err != nil || len(removed) != 0 {
		t.Fatalf("runners gc removed a pool server: %+v %v", removed, err)
	}
	if ids, err := w.client.Drain(ctx); err != nil || len(ids) != 1 {
		t.Fatalf("drain: %v %v", ids, err)
	}
	if err := w.svc.Upkeep(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := w.client.Status(ctx); err != nil || !st.Draining || len(st.VMs) != 0 {
		t.Fatalf("after a drain and an upkeep: %+v %v", st, err)
	}
	g, err := w.client.Lease(ctx, pool.Request{Tier: "cax11"})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := w.client.Return(ctx, g.LeaseID, "ok"); err != nil || d.Kept {
		t.Fatalf("a VM returned while draining was kept: %+v %v", d, err)
	}
	if s, _ := w.fake.Counts(); s != 0 {
		t.Fatalf("%d servers while drained", s)
	}
	if err := w.client.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Upkeep(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.client.Status(ctx); st.Draining || len(st.VMs) != 1 {
		t.Fatalf("after resume: %+v", st)
	}
	w.drainAndCheck(t)
}

// A pool lease reaches a registry on this machine, as a real server
// reaches one on its network: the recycled buildkitd (inside the server's
// network namespace) pulls and pushes the same as a fresh one. This push
// failed with "connection refused" before runner hosts had a route.
func TestPoolLeaseReachesTheTestRegistry(t *testing.T) {
	reg := testenv.StartRegistry(t)
	w := newWorld(t, worldConfig{hosts: true, registry: reg.Host})
	for i, tag := range []string{"first", "second"} { // the second lease runs on the recycled buildkitd
		res, err, progress := w.build(t, "FROM base\nRUN echo "+tag+" > /tag\n", func(r *pipeline.Request) {
			r.Build.Tags, r.Build.Push, r.Build.InsecureRegistries = []string{reg.Host + "/team/app:" + tag}, true, []string{reg.Host}
		})
		if err != nil {
			t.Fatalf("build %d: %v\n%s", i+1, err, progress)
		}
		if res.Digest == "" {
			t.Fatalf("build %d pushed nothing", i+1)
		}
		// A lease pays its share of the VM's hour (cax11: €0.0060/h).
		if res.CostEUR <= 0 || res.CostEUR >= 0.0060 {
			t.Errorf("build %d cost €%.6f, want a share of cax11's €0.0060 hour", i+1, res.CostEUR)
		}
	}
	pushed := 0
	for _, r := range reg.Requests() {
		if r.Method == "PUT" && strings.Contains(r.Path, "/team/app/manifests/") {
			pushed++
		}
	}
	if pushed != 2 {
		t.Errorf("%d manifests pushed, want 2", pushed)
	}
	w.drainAndCheck(t)
}

// `pool serve` runs on one machine with nothing else (an embedded
// nats-server in --data-dir); stopped with SIGTERM it says what it leaves,
// and restarted on the same directory it takes its VMs back.
func TestPoolServeAloneWithEmbeddedNATS(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	sp := startServiceProcess(t, w, "")
	c := &pool.Client{URL: "http://" + sp.Addr, Token: poolToken}
	ctx := t.Context()
	g, err := c.Lease(ctx, pool.Request{Tier: "cax11"})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.Return(ctx, g.LeaseID, "ok"); err != nil || !d.Kept {
		t.Fatalf("return: %+v %v", d, err)
	}
	if err := sp.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, sp.Log())
	}
	for _, want := range []string{"embedded nats-server", "pool VM created", "this VM stays", g.VM} {
		if !strings.Contains(sp.Log(), want) {
			t.Errorf("the log lacks %q:\n%s", want, sp.Log())
		}
	}
	if err := sp.Start(); err != nil {
		t.Fatal(err)
	}
	vms, err := c.List(ctx)
	if err != nil || len(vms) != 1 || vms[0].ID != g.VM || vms[0].State != pool.StateIdle {
		t.Fatalf("after a restart: %+v %v", vms, err)
	}
	if _, err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := w.fake.Counts(); s != 0 {
		t.Errorf("%d servers after the drain", s)
	}
}
