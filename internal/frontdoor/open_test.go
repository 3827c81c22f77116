package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/buildkit"
)

// The state store is a path for a provider with the LocalState feature
// and "volumes" for one with RemoteState; anything else is refused naming
// the setting and the providers that would take it.
func TestStateStorePerProvider(t *testing.T) {
	for _, c := range []struct {
		provider, store, want string
		remote                bool
	}{
		{"hcloud", "volumes", "", true},
		{"hcloud", "/var/lib/lian-state", "the state store is volumes", false},
		{"docker", "volumes", "the docker provider keeps no runner state (a path: local; volumes: hcloud, vm-pool)", false},
		{"vm-pool", "volumes", "", true},
		{"vm-pool", "/x", "the vm-pool provider keeps runner state itself: the state store is volumes", false},
		{"local", "volumes", "the state store is a PATH", false},
	} {
		s := Settings{ComputeProvider: c.provider, StateStore: c.store, StateMax: "1GiB"}
		st, keep, err := s.OpenState(context.Background())
		if c.want != "" {
			var ie *buildkit.InputError
			if !errors.As(err, &ie) || ie.Field != "state-store" || !strings.Contains(ie.Msg, c.want) {
				t.Errorf("%+v: err %v", c, err)
			}
			continue
		}
		if err != nil || st != nil || keep != 1<<30 || s.RemoteState() != c.remote {
			t.Errorf("%+v: store %v keep %d err %v remote %v", c, st, keep, err, s.RemoteState())
		}
	}
}

// buildkit names a setting by its canonical name; each door's name of it
// replaces that on the way out, also through wrapping.
func TestInputErrorsAreRenamedPerDoor(t *testing.T) {
	table := SettingsTable()
	for door, want := range map[string]string{"cli": "--secret", "action": "secrets", "woodpecker": "secrets"} {
		names := Names(table, map[string]func(Setting) string{"cli": Setting.CLIName, "action": func(s Setting) string { return s.Input }, "woodpecker": func(s Setting) string { return s.Key }}[door])
		s := Settings{Names: names}
		err := s.Renamed(fmt.Errorf("attempt 1: %w", &buildkit.InputError{Field: "secrets", Msg: "environment variable X is not set"}))
		var ie *buildkit.InputError
		if !errors.As(err, &ie) || ie.Field != want || !strings.HasPrefix(err.Error(), "attempt 1: "+want+": ") {
			t.Errorf("%s: %v, want the field %s and the wrapping kept", door, err, want)
		}
	}
	if err := (Settings{}).Renamed(nil); err != nil {
		t.Fatal(err)
	}
}

// Provenance defaults as build-push-action's: mode=max for a public
// repository's CI push, mode=min for a private one and for sessions, none
// without a push; the setting overrides.
func TestProvenanceDefaults(t *testing.T) {
	push := Settings{Push: true, Tags: []string{"r.io/a:1"}, Source: "https://github.com/o/r", Commit: "abc"}
	for _, c := range []struct {
		name string
		mod  func(*Settings)
		want string
	}{
		{"public CI", func(s *Settings) { s.Public = true }, "max"},
		{"private CI", func(s *Settings) {}, "min"},
		{"public session", func(s *Settings) { s.Public, s.Actor = true, "human:octocat" }, "min"},
		{"no push", func(s *Settings) { s.Public, s.Push = true, false }, ""},
		{"registry output", func(s *Settings) { s.Push, s.Outputs = false, []string{"type=registry,name=r.io/a:1"} }, "min"},
		{"off", func(s *Settings) { s.Public, s.Provenance = true, "false" }, ""},
		{"explicit max on private", func(s *Settings) { s.Provenance = "mode=max" }, "max"},
	} {
		s := push
		c.mod(&s)
		p, err := s.provenance(s.pushes())
		if err != nil || p.Mode != c.want || (p.Mode != "" && (p.Source != "https://github.com/o/r" || p.Revision != "abc")) {
			t.Errorf("%s: %+v %v, want mode %q", c.name, p, err, c.want)
		}
	}
	s := push
	s.Provenance, s.Names = "mode=full", Names(SettingsTable(), Setting.CLIName)
	var ie *buildkit.InputError
	if _, err := s.provenance(s.pushes()); !errors.As(err, &ie) || ie.Field != "--provenance" {
		t.Errorf("a bad provenance: %v", err)
	}
}

// A signing key that cannot be used is refused before the build, naming
// the setting and never quoting the key.
func TestSigningKeyRefusals(t *testing.T) {
	names := Names(SettingsTable(), Setting.CLIName)
	notKey := filepath.Join(t.TempDir(), "not-a-key")
	if err := os.WriteFile(notKey, []byte("-----BEGIN NOTHING-----\nc2VjcmV0LWJ5dGVz\n-----END NOTHING-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	push := Settings{Push: true, Tags: []string{"r.io/a:1"}, Names: names}
	for _, c := range []struct {
		name string
		s    func() Settings
		want string
	}{
		{"nothing pushed", func() Settings { s := Settings{Names: names, SignKey: notKey}; return s }, "nothing is pushed to sign"},
		{"missing file", func() Settings { s := push; s.SignKey = notKey + ".gone"; return s }, "cannot read"},
		{"not a key", func() Settings { s := push; s.SignKey = notKey; return s }, "not a cosign private key"},
		{"inline not a key", func() Settings {
			s := push
			s.SignKey = "-----BEGIN X-----\nc2VjcmV0LWJ5dGVz\n-----END X-----"
			return s
		}, "not a cosign private key"},
	} {
		_, err := c.s().SigningKey()
		var ie *buildkit.InputError
		if !errors.As(err, &ie) || ie.Field != "--sign-key" || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if k, err := (Settings{}).SigningKey(); k != nil || err != nil {
		t.Errorf("no key: %v %v", k, err)
	}
}

// The machines a build needs: arm when a platform runs on arm, x86 when
// one runs on x86 only, the provider's default otherwise.
func TestArchOfPlatforms(t *testing.T) {
	for want, ps := range map[string][]string{"arm": {"linux/arm64"}, "x86": {"linux/amd64", "linux/386"}, "": {"linux/riscv64"}} {
		if got := (Settings{Platforms: ps}).arch(); got != want {
			t.Errorf("%v: %q, want %q", ps, got, want)
		}
	}
	if got := (Settings{Platforms: []string{"linux/amd64", "linux/arm64"}}).arch(); got != "arm" {
		t.Errorf("both: %q", got)
	}
}
