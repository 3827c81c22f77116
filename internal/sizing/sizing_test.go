package sizing

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	tests := []struct {
		in, want string
		err      any
	}{
		{"cax11", "cax21", nil},
		{"cax21", "cax31", nil},
		{"CAX31", "cax41", nil},
		{"cax41", "", new(*NoNextTierError)},
		{"cx99", "", new(*UnknownTierError)},
	}
	for _, tt := range tests {
		got, err := HCloud.Next(tt.in)
		if tt.err != nil {
			if err == nil || !errors.As(err, tt.err) {
				t.Errorf("Next(%q) err = %v, want %T", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got.Name != tt.want {
			t.Errorf("Next(%q) = %v, %v; want %s", tt.in, got.Name, err, tt.want)
		}
	}
}

func TestUnknownTierListsValid(t *testing.T) {
	_, err := HCloud.Lookup("cax99")
	if err == nil || !strings.Contains(err.Error(), "cax11, cax21, cax31, cax41") {
		t.Fatalf("err = %v", err)
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		cpu, mem int
		want     string
		ok       bool
	}{
		{1, 1, "cax11", true}, {2, 4, "cax11", true}, {3, 4, "cax21", true},
		{2, 5, "cax21", true}, {8, 9, "cax31", true}, {16, 32, "cax41", true}, {17, 1, "", false},
	}
	for _, tt := range tests {
		got, ok := HCloud.Fit(tt.cpu, tt.mem)
		if ok != tt.ok || got.Name != tt.want {
			t.Errorf("Fit(%d,%d) = %s,%v want %s,%v", tt.cpu, tt.mem, got.Name, ok, tt.want, tt.ok)
		}
	}
}

func TestP95Need(t *testing.T) {
	tests := []struct {
		u        Usage
		cpu, mem int
	}{
		{Usage{CPU: 0.5, MemoryGB: 1}, 2, 4},   // floor
		{Usage{CPU: 2.5, MemoryGB: 5}, 3, 6},   // 3.0 exactly, no float creep
		{Usage{CPU: 3.4, MemoryGB: 6.8}, 5, 9}, // 4.08→5, 8.16→9
		{Usage{CPU: 10, MemoryGB: 20}, 12, 24},
	}
	for _, tt := range tests {
		c, m := P95Need(tt.u)
		if c != tt.cpu || m != tt.mem {
			t.Errorf("P95Need(%+v) = %d,%d want %d,%d", tt.u, c, m, tt.cpu, tt.mem)
		}
	}
}

type fakeHistory map[string]Usage

func (h fakeHistory) P95(_ context.Context, ws string) (Usage, bool, error) {
	u, ok := h[ws]
	return u, ok, nil
}

func dirWith(t *testing.T, files ...string) string {
	d := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(d, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestResolve(t *testing.T) {
	hist := fakeHistory{
		"approved":   {CPU: 5, MemoryGB: 10, Samples: 3, Approved: true},
		"unapproved": {CPU: 5, MemoryGB: 10, Samples: 3},
	}
	tests := []struct {
		name       string
		in         Input
		tier       string
		src        Source
		reason     string
		suggestion string
		budget     time.Duration
	}{
		{"override wins over spec", Input{Override: "cax41", Spec: &Spec{RunnerType: "cax11"}, ContextDir: dirWith(t, "Cargo.toml")}, "cax41", SourceOverride, "runner override cax41", "", 60 * time.Minute},
		{"spec runner_type", Input{Spec: &Spec{RunnerType: "cax31"}, ContextDir: dirWith(t)}, "cax31", SourceSpec, `runner_type = "cax31"`, "", 30 * time.Minute},
		{"spec cpu/mem", Input{Spec: &Spec{CPU: 3, MemoryGB: 4, TimeBudget: 7 * time.Minute}, ContextDir: dirWith(t)}, "cax21", SourceSpec, "3 CPU / 4 GB", "", 7 * time.Minute},
		{"spec only budget falls through", Input{Spec: &Spec{TimeBudget: 9 * time.Minute}, ContextDir: dirWith(t, "go.mod")}, "cax11", SourceDefault, "go.mod found", "", 9 * time.Minute},
		{"approved p95", Input{Workspace: "approved", History: hist, ContextDir: dirWith(t)}, "cax31", SourceP95, "× 1.2 → 6 CPU / 12 GB", "", 30 * time.Minute},
		{"unapproved p95 is a suggestion", Input{Workspace: "unapproved", History: hist, ContextDir: dirWith(t, "Cargo.toml")}, "cax21", SourceDefault, "rust default 4 CPU / 8 GB (Cargo.toml found)", "cax31", 60 * time.Minute},
		{"no history", Input{Workspace: "none", History: hist, ContextDir: dirWith(t, "pom.xml")}, "cax21", SourceDefault, "java default", "", 45 * time.Minute},
		{"gradle", Input{ContextDir: dirWith(t, "build.gradle")}, "cax21", SourceDefault, "java default", "", 45 * time.Minute},
		{"generic", Input{ContextDir: dirWith(t, "Makefile")}, "cax11", SourceDefault, "generic default 2 CPU / 4 GB (no language marker)", "", 30 * time.Minute},
		{"spec language overrides detection", Input{Spec: &Spec{Language: "rust"}, ContextDir: dirWith(t, "go.mod")}, "cax21", SourceDefault, "rust default", "", 60 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Table = HCloud
			d, err := Resolve(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Tier.Name != tt.tier || d.Source != tt.src || !strings.Contains(d.Reason, tt.reason) || d.Budget != tt.budget {
				t.Fatalf("got %s/%s %q budget %s; want %s/%s %q budget %s", d.Tier.Name, d.Source, d.Reason, d.Budget, tt.tier, tt.src, tt.reason, tt.budget)
			}
			if !strings.HasPrefix(d.Suggestion, tt.suggestion) || (tt.suggestion == "") != (d.Suggestion == "") {
				t.Fatalf("suggestion %q, want prefix %q", d.Suggestion, tt.suggestion)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"unknown override", Input{Override: "big", ContextDir: dirWith(t)}, `unknown runner tier "big" (valid tiers: cax11, cax21, cax31, cax41)`},
		{"unknown spec tier", Input{Spec: &Spec{RunnerType: "cx11"}, ContextDir: dirWith(t)}, ".build-spec.ncl: runner_type: unknown runner tier"},
		{"too big", Input{Spec: &Spec{CPU: 64, MemoryGB: 8}, ContextDir: dirWith(t)}, "fits no tier (largest: cax41 16 CPU / 32 GB)"},
		{"bad language", Input{Spec: &Spec{Language: "cobol"}, ContextDir: dirWith(t)}, `language "cobol"`},
		{"missing context", Input{ContextDir: "/nonexistent/ctx"}, "build context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Table = HCloud
			_, err := Resolve(context.Background(), tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
