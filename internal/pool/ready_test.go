package pool

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"maps"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestAdoptable(t *testing.T) {
	warm := map[string]Warm{"ci/app": {Generation: 3}, "dev/h-jpl/app": {Generation: 1}}
	state := func(read ...string) *LeaseState {
		return &LeaseState{StateRequest: StateRequest{Read: read, Write: read[0]}}
	}
	for _, c := range []struct {
		name  string
		ready *Ready
		warm  map[string]Warm
		state *LeaseState
		want  bool
	}{
		{"not made ready", nil, warm, nil, false},
		{"plain lease, empty root", &Ready{}, warm, nil, true},
		{"plain lease, a warm tree", &Ready{Tree: "r-1", Namespace: "ci/app", Generation: 3}, warm, nil, false},
		{"plain lease, an empty tree", &Ready{Tree: "r-1"}, warm, nil, false},
		{"state lease, empty root", &Ready{}, warm, state("ci/app"), false},
		{"its namespace, the generation held", &Ready{Tree: "r-1", Namespace: "ci/app", Generation: 3}, warm, state("ci/app"), true},
		{"its namespace, an older generation", &Ready{Tree: "r-1", Namespace: "ci/app", Generation: 2}, warm, state("ci/app"), false},
		{"another workspace's namespace", &Ready{Tree: "r-1", Namespace: "ci/app", Generation: 3}, warm, state("ci/web"), false},
		{"a session: its own namespace first", &Ready{Tree: "r-1", Namespace: "ci/app", Generation: 3}, warm, state("dev/h-jpl/app", "ci/app"), false},
		{"a session on its own namespace", &Ready{Tree: "r-1", Namespace: "dev/h-jpl/app", Generation: 1}, warm, state("dev/h-jpl/app", "ci/app"), true},
		{"none held, an empty tree", &Ready{Tree: "r-1"}, warm, state("ci/web"), true},
		{"held but made ready empty", &Ready{Tree: "r-1"}, warm, state("ci/app"), false},
	} {
		v := VM{ID: "vm", Warm: c.warm, Ready: c.ready}
		if got := adoptable(v, Lease{State: c.state}); got != c.want {
			t.Errorf("%s: adoptable = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestReadyNamespace(t *testing.T) {
	v := VM{Warm: map[string]Warm{"ci/app": {Generation: 2}, "dev/h-jpl/app": {Generation: 1}}}
	for _, c := range []struct {
		st   LeaseState
		want string
	}{
		{LeaseState{StateRequest: StateRequest{Write: "ci/app"}, Opened: "ci/app"}, "ci/app"},
		{LeaseState{StateRequest: StateRequest{Write: "dev/h-jpl/app"}, Opened: "ci/app"}, "dev/h-jpl/app"},
		{LeaseState{StateRequest: StateRequest{Write: "ci/web"}, Opened: "ci/app"}, "ci/app"}, // its commit failed
		{LeaseState{StateRequest: StateRequest{Write: "ci/web"}}, ""},
		{LeaseState{StateRequest: StateRequest{}}, ""},
	} {
		if got := readyNamespace(v, c.st); got != c.want {
			t.Errorf("after %+v: ready for %q, want %q", c.st, got, c.want)
		}
	}
}

// Every replica holding the pool's key derives the same prepared key from
// a VM's nonce; another nonce, VM or pool key derives another; a key whose
// signatures are randomized derives none.
func TestPreparedKey(t *testing.T) {
	signer := func(k any) ssh.Signer {
		s, err := ssh.NewSignerFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, p1, _ := ed25519.GenerateKey(rand.Reader)
	_, p2, _ := ed25519.GenerateKey(rand.Reader)
	a, b, other := &Service{keySecret: keySecret(signer(p1))}, &Service{keySecret: keySecret(signer(p1))}, &Service{keySecret: keySecret(signer(p2))}
	k := a.preparedKey("vm-1", "n1")
	if !k.Equal(b.preparedKey("vm-1", "n1")) {
		t.Error("two replicas derive different keys")
	}
	for name, k2 := range map[string]ed25519.PrivateKey{"nonce": a.preparedKey("vm-1", "n2"), "VM": a.preparedKey("vm-2", "n1"), "pool key": other.preparedKey("vm-1", "n1")} {
		if k.Equal(k2) {
			t.Errorf("another %s derives the same key", name)
		}
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if s := keySecret(signer(ec)); s != nil {
		t.Error("an ECDSA key (randomized signatures) derives prepared keys")
	}
}

// A VM past its budget drops the namespaces committed longest ago, never
// the newest; with no budget or one namespace it drops nothing.
func TestEvict(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 12, 6, 10, m, 0, 0, time.UTC) }
	v := VM{DiskGB: 40, Warm: map[string]Warm{
		"ci/a": {Committed: at(1), Bytes: 8e9}, "ci/b": {Committed: at(3), Bytes: 8e9},
		"ci/c": {Committed: at(2), Bytes: 8e9}, "ci/d": {Committed: at(4), Bytes: 8e9}}}
	for _, c := range []struct {
		name   string
		policy Policy
		vm     VM
		want   []string
	}{
		{"half the disk by default", Policy{}, v, []string{"ci/a", "ci/c"}},
		{"within an explicit budget", Policy{WarmBytes: 40e9}, v, nil},
		{"the newest is kept", Policy{WarmBytes: 1}, v, []string{"ci/a", "ci/c", "ci/b"}},
		{"disk unknown, no budget", Policy{}, VM{Warm: v.Warm}, nil},
		{"one namespace over budget", Policy{WarmBytes: 1}, VM{Warm: map[string]Warm{"ci/a": {Bytes: 9e9}}}, nil},
	} {
		if got := c.policy.Evict(c.vm); !slices.Equal(got, c.want) {
			t.Errorf("%s: evict %v, want %v", c.name, got, c.want)
		}
	}
}

// A VM retired at the end of its hour hands each namespace it alone holds
// the newest generation of to the idle VM with the most of its hour left
// that has room: not one retiring too, leased, of another architecture or
// class group, or without room; a namespace another VM holds as new stays.
func TestHandOff(t *testing.T) {
	now := time.Date(2026, 12, 6, 11, 58, 0, 0, time.UTC)
	from := VM{ID: "old", Arch: "arm", Group: "ci", State: StateIdle, Created: now.Add(-58 * time.Minute), DiskGB: 40,
		Warm: map[string]Warm{"ci/a": {Generation: 5, Bytes: 4e9}, "ci/b": {Generation: 2, Bytes: 4e9}, "ci/c": {Generation: 1, Bytes: 17e9}}}
	vm := func(id string, age time.Duration, mod func(*VM)) VM {
		v := VM{ID: id, Arch: "arm", Group: "ci", State: StateIdle, Created: now.Add(-age), DiskGB: 40, Warm: map[string]Warm{"ci/b": {Generation: 3}}}
		if mod != nil {
			mod(&v)
		}
		return v
	}
	vms := []VM{from,
		vm("young", 10*time.Minute, nil),
		vm("younger-leased", time.Minute, func(v *VM) { v.State = StateLeased }),
		vm("younger-x86", time.Minute, func(v *VM) { v.Arch = "x86" }),
		vm("younger-dev", time.Minute, func(v *VM) { v.Group = "dev" }),
		vm("younger-gone", time.Minute, nil),
		vm("mid", 30*time.Minute, nil),
	}
	got := (Policy{}).HandOff(now, from, vms, map[string]bool{"younger-gone": true})
	// ci/b: "young" holds a newer one. ci/c: 17 GB after ci/a's 4 GB fills
	// "young" past its 20 GB budget (half its disk), so it goes to "mid".
	want := map[string]string{"ci/a": "young", "ci/c": "mid"}
	if !maps.Equal(got, want) {
		t.Errorf("HandOff = %v, want %v", got, want)
	}
	if got := (Policy{WarmBytes: 1e9}).HandOff(now, from, vms, nil); len(got) != 0 {
		t.Errorf("no VM has room, yet HandOff = %v", got)
	}
	twin := vm("twin", 58*time.Minute, nil)
	rs := (Policy{}).Retire(now, []VM{from, twin})
	if len(rs) != 2 {
		t.Fatalf("retired %+v, want both", rs)
	}
	for _, r := range rs {
		if len(r.HandOff) != 0 {
			t.Errorf("%s hands off %v to a VM retired with it", r.VM.ID, r.HandOff)
		}
	}
}
