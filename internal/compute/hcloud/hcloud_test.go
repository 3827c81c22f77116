package hcloud

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	hc "github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

const token = "hc-T0KEN-secret-9f1e"

func newTest(t *testing.T, locations ...string) (*Provider, *fakehcloud.Fake) {
	t.Helper()
	f := fakehcloud.New(token, nil)
	t.Cleanup(f.Close)
	p, err := New(Settings{Token: token, Endpoint: f.Endpoint(), Locations: locations, PollEvery: 50 * time.Millisecond, Insecure: []string{"10.0.0.1:5000"}})
	if err != nil {
		t.Fatal(err)
	}
	return p, f
}

func lease(id string) compute.Lease {
	return compute.Lease{ID: id, Owner: compute.Owner(), TTL: time.Hour, Labels: map[string]string{compute.LabelWorkspace: "app", "lian-build/tier": "cax21"}}
}

// A server that never answers on SSH: the spawn times out, and the server
// and its key are deleted. Before that, no capacity in fsn1 moves the
// server to nbg1 with the same type; a delete answered with a 5xx once is
// retried. The token is only ever in the Authorization header.
func TestSpawnFallsBackTimesOutAndCleansUp(t *testing.T) {
	p, f := newTest(t, "fsn1", "nbg1")
	f.Inject(fakehcloud.Fault{Method: "POST", PathPrefix: "/servers", Location: "fsn1", Status: 503, Code: "resource_unavailable"})
	f.Inject(fakehcloud.Fault{Method: "DELETE", PathPrefix: "/servers/", Times: 1, Status: 500, Code: "service_error"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := p.Spawn(ctx, sizing.HCloud[1], lease("b1-a1"))
	if err == nil || !strings.Contains(err.Error(), "never answered on SSH") {
		t.Fatalf("spawn: %v", err)
	}
	if s, k := f.Counts(); s != 0 || k != 0 {
		t.Fatalf("left %d servers and %d SSH keys", s, k)
	}
	var creates, deletes []string
	for _, r := range f.Requests() {
		if !r.Authorized {
			t.Errorf("unauthorized request %s %s", r.Method, r.Path)
		}
		if strings.Contains(r.Body+r.Query+r.Path, token) {
			t.Errorf("the token is in %s %s", r.Method, r.Path)
		}
		if r.Method == "POST" && r.Path == "/servers" {
			creates = append(creates, r.Body)
		}
		if r.Method == "DELETE" && strings.HasPrefix(r.Path, "/servers/") {
			deletes = append(deletes, r.Path)
		}
	}
	if len(creates) != 2 || !strings.Contains(creates[0], `"location":"fsn1"`) || !strings.Contains(creates[1], `"location":"nbg1"`) {
		t.Fatalf("creates %v", creates)
	}
	for _, c := range creates {
		var req schema.ServerCreateRequest
		if err := json.Unmarshal([]byte(c), &req); err != nil || req.ServerType.ID != fakehcloud.ServerTypes[1].ID || fakehcloud.ServerTypes[1].Name != "cax21" {
			t.Errorf("create request is not for cax21: %s", c)
		}
		if !regexp.MustCompile(`"lian-build/expires":"\d{10}"`).MatchString(c) || !strings.Contains(c, `"lian-build/lease":"b1-a1"`) || !strings.Contains(c, `"lian-build/workspace":"app"`) {
			t.Errorf("create request lacks the type or labels: %s", c)
		}
	}
	if len(deletes) != 2 {
		t.Fatalf("want the 5xx delete retried once: %v", deletes)
	}
}

// When no location has capacity the error names every location tried; it
// never takes another type.
func TestNoCapacityAnywhereNamesTheLocations(t *testing.T) {
	p, f := newTest(t, "fsn1", "hel1")
	f.Inject(fakehcloud.Fault{Method: "POST", PathPrefix: "/servers", Status: 503, Code: "resource_unavailable"})
	_, err := p.Spawn(context.Background(), sizing.HCloud[0], lease("b2-a1"))
	if err == nil || !strings.Contains(err.Error(), "no capacity for cax11 in any location tried: fsn1 (resource_unavailable: injected fault: resource_unavailable), hel1 (resource_unavailable: ") {
		t.Fatalf("spawn: %v", err)
	}
	if s, k := f.Counts(); s != 0 || k != 0 {
		t.Fatalf("left %d servers and %d SSH keys", s, k)
	}
}

// 429 with RateLimit-Reset: hcloud-go waits and the call goes through.
func TestRateLimitIsHonoured(t *testing.T) {
	p, f := newTest(t)
	f.Inject(fakehcloud.Fault{Method: "POST", PathPrefix: "/ssh_keys", Times: 1, Status: 429, Code: "rate_limit_exceeded", ResetIn: time.Second})
	r := &runner{p: p, lease: lease("b3-a1")}
	if _, err := r.createKey(context.Background(), r.lease.LabelSet(time.Now())); err != nil {
		t.Fatalf("create key after a 429: %v", err)
	}
	if err := r.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, k := f.Counts(); k != 0 {
		t.Fatalf("left %d keys", k)
	}
}

// gc finds lian-build's servers and keys by label and removes the expired
// ones and keys left without a server; a live lease is kept.
func TestGCByLabels(t *testing.T) {
	p, f := newTest(t)
	ctx := context.Background()
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	mk := func(id string, exp time.Time, withServer bool) {
		l := compute.Lease{ID: id, TTL: time.Until(exp)}
		labels := l.LabelSet(time.Now())
		key, _, err := p.c.SSHKey.Create(ctx, hc.SSHKeyCreateOpts{Name: id, PublicKey: newPublicKey(t), Labels: labels})
		if err != nil {
			t.Fatal(err)
		}
		if !withServer {
			return
		}
		st, _, _ := p.c.ServerType.GetByName(ctx, "cax11")
		img, _, _ := p.c.Image.GetByNameAndArchitecture(ctx, "debian-12", hc.ArchitectureARM)
		if _, _, err := p.c.Server.Create(ctx, hc.ServerCreateOpts{Name: id, ServerType: st, Image: img, SSHKeys: []*hc.SSHKey{key}, Labels: labels}); err != nil {
			t.Fatal(err)
		}
	}
	mk("expired", past, true)
	mk("live", future, true)
	mk("lonely-key", past, false)
	if _, _, err := p.c.Server.Create(ctx, hc.ServerCreateOpts{Name: "not-ours", ServerType: &hc.ServerType{Name: "cax11"}, Image: &hc.Image{Name: "debian-12"}}); err != nil {
		t.Fatal(err)
	}
	infos, err := p.List(ctx)
	if err != nil || len(infos) != 3 {
		t.Fatalf("List = %+v, %v", infos, err)
	}
	removed, err := p.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 { // expired's server and key, lonely-key
		t.Fatalf("removed %+v", removed)
	}
	if s, k := f.Counts(); s != 2 || k != 1 {
		t.Fatalf("after gc: %d servers (want live and not-ours), %d keys (want live's)", s, k)
	}
}

// newPublicKey is a fresh ed25519 key in authorized_keys format (the API
// refuses anything else).
func newPublicKey(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// A server create answered with a 5xx may or may not have made the server.
// The provider looks it up by its name (unique in a project): one made is
// taken, none made is created again, once; never two servers. (The system
// soak found a pool build failing on a single 500.)
func TestCreateAnsweredWithA5xx(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("made=%v", after), func(t *testing.T) {
			p, f := newTest(t)
			pub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(newPublicKey(t)))
			ctx := context.Background()
			key, err := p.EnsureKey(ctx, "pool-key", pub, nil)
			if err != nil {
				t.Fatal(err)
			}
			f.Inject(fakehcloud.Fault{Method: "POST", PathPrefix: "/servers", Times: 1, Status: 500, Code: "service_error", After: after})
			m, err := p.CreateMachine(ctx, MachineSpec{Name: "lbp-t-cax11-0", Tier: sizing.HCloud[0], KeyID: key, Labels: map[string]string{"lian-build/pool": "t"}})
			if err != nil {
				t.Fatalf("create after a 500: %v", err)
			}
			creates := 0
			for _, r := range f.Requests() {
				if r.Method == "POST" && r.Path == "/servers" {
					creates++
				}
			}
			servers, _ := f.Counts()
			if servers != 1 || m.ID == 0 || m.Name != "lbp-t-cax11-0" || m.Addr == "" {
				t.Fatalf("%d servers, machine %+v", servers, m)
			}
			if want := map[bool]int{false: 2, true: 1}[after]; creates != want {
				t.Errorf("%d creates, want %d", creates, want)
			}
		})
	}
}
