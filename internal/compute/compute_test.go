package compute

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/sizing"
)

type testFactory struct{ name string }

func (f testFactory) Name() string        { return f.name }
func (f testFactory) Tiers() sizing.Table { return sizing.HCloud }
func (f testFactory) Options() []string   { return []string{"size"} }
func (f testFactory) Settings() []Setting { return []Setting{{Name: "size", Help: "a size"}} }
func (f testFactory) Features() Features  { return Features{} }
func (f testFactory) New(cfg Config) (Provider, error) {
	if cfg.Options["size"] == "bad" {
		return nil, &OptionError{Option: "size", Err: errors.New("not a size")}
	}
	return nil, nil
}

func TestRegistry(t *testing.T) {
	Register(testFactory{"test-a"})
	if _, err := Lookup("test-a"); err != nil {
		t.Fatal(err)
	}
	var ue *UnknownProviderError
	if _, err := Lookup("nope"); !errors.As(err, &ue) || !strings.Contains(err.Error(), "test-a") {
		t.Fatalf("Lookup(nope) = %v, want the available providers listed", err)
	}
	if _, err := New("test-a", Config{Options: map[string]string{"colour": "red"}}); err == nil || !strings.Contains(err.Error(), "takes no option colour") {
		t.Fatalf("an unknown option was accepted: %v", err)
	}
	var oe *OptionError
	if _, err := New("test-a", Config{Options: map[string]string{"size": "bad"}}); !errors.As(err, &oe) || oe.Option != "size" {
		t.Fatalf("option error = %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	Register(testFactory{"test-a"})
}

// Label values allow no ':' on some clouds: the expiry is unix seconds.
func TestLeaseLabels(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := Lease{ID: "b1-a1", Owner: SafeLabel("host:1/pid 42"), TTL: time.Hour, Labels: map[string]string{LabelWorkspace: "app"}}
	set := l.LabelSet(now)
	if set[LabelExpires] != "1800003600" || set[LabelLease] != "b1-a1" || set[LabelOwner] != "host-1-pid-42" || set[LabelWorkspace] != "app" {
		t.Fatalf("labels %v", set)
	}
	for k, v := range set {
		if strings.ContainsAny(v, ": /") || len(v) > 63 {
			t.Errorf("label %s=%q is not a valid label value", k, v)
		}
	}
	if exp, ok := ParseExpires(set[LabelExpires]); !ok || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("ParseExpires = %v %v", exp, ok)
	}
	if len(SafeLabel(strings.Repeat("x", 100))) != 63 {
		t.Error("SafeLabel does not bound the length")
	}
	// A valid 100-character workspace becomes a valid label, the same every
	// time, and another long name with the same beginning another label.
	ws1, ws2 := strings.Repeat("a", 99)+"1", strings.Repeat("a", 99)+"2"
	l1 := Lease{ID: "x", Labels: map[string]string{LabelWorkspace: ws1}}.LabelSet(now)[LabelWorkspace]
	l2 := Lease{ID: "x", Labels: map[string]string{LabelWorkspace: ws2}}.LabelSet(now)[LabelWorkspace]
	if len(l1) > 63 || l1 == l2 || l1 != SafeLabel(ws1) || !strings.HasPrefix(l1, "aaaa") {
		t.Errorf("long workspace labels %q and %q", l1, l2)
	}
}

func TestOwnerLabelRoundTrip(t *testing.T) {
	o := Owner()
	if SafeLabel(o) != o {
		t.Fatalf("owner %q is not a label value", o)
	}
	if pid, ok := LocalOwnerPID(o); !ok || pid != os.Getpid() {
		t.Fatalf("LocalOwnerPID(%q) = %d, %v", o, pid, ok)
	}
	if _, ok := LocalOwnerPID("elsewhere-pid-42"); ok {
		t.Fatal("an owner on another host was taken for a local one")
	}
}

// Features are found by provider name; one not registered has none.
func TestFeaturesOf(t *testing.T) {
	Register(featureFactory{testFactory{"test-features"}})
	if f := FeaturesOf("test-features"); !f.Reuse || f.SampleEvery != time.Second {
		t.Fatalf("FeaturesOf = %+v", f)
	}
	if f := FeaturesOf("not-registered"); f.Reuse || f.SampleEvery != 0 {
		t.Fatalf("an unregistered provider has features %+v", f)
	}
	if got := WithFeature(func(f Features) bool { return f.Reuse }); !slices.Contains(got, "test-features") || slices.Contains(got, "test-a") {
		t.Fatalf("WithFeature(Reuse) = %v", got)
	}
	err := RefuseState("plain", Lease{State: "/x"})
	if err == nil || !strings.Contains(err.Error(), "plain cannot start a runner from a state store") {
		t.Fatalf("RefuseState = %v", err)
	}
}

type featureFactory struct{ testFactory }

func (featureFactory) Features() Features { return Features{Reuse: true, SampleEvery: time.Second} }
