package gateway

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		body string
		cmd  Command
		ok   bool
	}{
		{"/lian rebuild", Command{Verb: "rebuild"}, true},
		{"/lian rebuild cax31", Command{Verb: "rebuild", Arg: "cax31"}, true},
		{"Looks good.\n\n/lian rebuild CAX41\nthanks", Command{Verb: "rebuild", Arg: "cax41"}, true},
		{"/lian", Command{Verb: "help"}, true},
		{"/lian help", Command{Verb: "help"}, true},
		{"/lian frobnicate", Command{Verb: "frobnicate"}, true},
		{"```\n/lian rebuild\n```", Command{}, false},
		{"~~~sh\n/lian rebuild\n~~~\n", Command{}, false},
		{"    /lian rebuild", Command{}, false},
		{"> /lian rebuild", Command{}, false},
		{"please run /lian rebuild", Command{}, false},
		{"/lianrebuild", Command{}, false},
		{"", Command{}, false},
		{"```\nunterminated\n/lian rebuild", Command{}, false},
	}
	for _, tt := range tests {
		cmd, ok := ParseCommand(tt.body)
		if ok != tt.ok || cmd != tt.cmd {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v, %v", tt.body, cmd, ok, tt.cmd, tt.ok)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	f.Add("/lian rebuild cax31")
	f.Add("```\n/lian\n```")
	f.Fuzz(func(t *testing.T, body string) {
		cmd, ok := ParseCommand(body)
		if ok && cmd.Verb == "" {
			t.Fatalf("command without a verb from %q", body)
		}
	})
}

func TestVerifySignature(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"a":1}`)
	good := Sign(secret, body)
	for sig, want := range map[string]bool{
		good: true, "": false, "sha256=": false, "sha256=zz": false, "sha1=" + good[7:]: false,
		Sign([]byte("other"), body): false, Sign(secret, []byte(`{"a":2}`)): false,
	} {
		if VerifySignature(secret, body, sig) != want {
			t.Errorf("VerifySignature(%q) = %v", sig, !want)
		}
	}
}

// fixture reads a real payload from testdata/github-webhooks and adapts it.
func fixture(t testing.TB, path string, adapt func(map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(testenv.Webhook(path))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if adapt != nil {
		adapt(m)
	}
	out, _ := json.Marshal(m)
	return out
}

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func TestRoute(t *testing.T) {
	cfg := RouteConfig{Table: sizing.HCloud}
	pushTo := func(ref string) func(map[string]any) {
		return func(m map[string]any) {
			m["ref"], m["after"], m["deleted"] = ref, "abc123abc123abc123abc123abc123abc123abcd", false
		}
	}
	comment := func(body string, pr bool, mut func(map[string]any)) func(map[string]any) {
		return func(m map[string]any) {
			obj(m, "comment")["body"] = body
			if pr {
				obj(m, "issue")["pull_request"] = map[string]any{"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
			}
			if mut != nil {
				mut(m)
			}
		}
	}
	tests := []struct {
		name, event, file string
		adapt             func(map[string]any)
		kind              JobKind
		ignore            string
		check             func(*testing.T, Job)
	}{
		{"push to default branch", "push", "push/with-installation.payload.json", pushTo("refs/heads/master"), JobPush, "", func(t *testing.T, j Job) {
			if j.SHA != "abc123abc123abc123abc123abc123abc123abcd" || j.Actor != "ci" || j.Installation != 1 || j.BranchKey() != "Codertocat/Hello-World@refs/heads/master" {
				t.Errorf("%+v", j)
			}
		}},
		{"push to another branch", "push", "push/with-installation.payload.json", pushTo("refs/heads/feature"), "", "branch feature is not configured", nil},
		{"tag deletion (the fixture as is)", "push", "push/with-installation.payload.json", nil, "", "ref deleted", nil},
		{"tag push", "push", "push/with-installation.payload.json", pushTo("refs/tags/v1"), "", "tag push", nil},
		{"push without installation", "push", "push/payload.json", pushTo("refs/heads/master"), "", "no installation", nil},
		{"rebuild on a tier", "issue_comment", "issue_comment/created.with-installation.payload.json", comment("/lian rebuild cax31", true, nil), JobComment, "", func(t *testing.T, j Job) {
			if j.Tier != "cax31" || j.Actor != "human:codertocat" || j.PR != 1 || j.Commenter != "Codertocat" || j.Association != "OWNER" {
				t.Errorf("%+v", j)
			}
		}},
		{"unknown tier gets a reply", "issue_comment", "issue_comment/created.with-installation.payload.json", comment("/lian rebuild huge", true, nil), JobReply, "", func(t *testing.T, j Job) {
			if !strings.Contains(j.Reply, "`huge` is not a runner tier") || !strings.Contains(j.Reply, "`cax41` (16 CPU / 32 GB)") {
				t.Errorf("reply %q", j.Reply)
			}
		}},
		{"help", "issue_comment", "issue_comment/created.with-installation.payload.json", comment("/lian help", true, nil), JobReply, "", nil},
		{"comment on an issue", "issue_comment", "issue_comment/created.with-installation.payload.json", comment("/lian rebuild", false, nil), "", "not a pull request", nil},
		{"edited comment", "issue_comment", "issue_comment/edited.payload.json", comment("/lian rebuild", true, func(m map[string]any) {
			m["installation"] = map[string]any{"id": 1}
		}), "", "comment edited", nil},
		{"bot", "issue_comment", "issue_comment/created.with-installation.payload.json", comment("/lian rebuild", true, func(m map[string]any) {
			obj(obj(m, "comment"), "user")["type"] = "Bot"
		}), "", "bot", nil},
		{"command in a code block", "issue_comment", "issue_comment/created.with-installation.payload.json", comment("```\n/lian rebuild\n```", true, nil), "", "no /lian command", nil},
		{"check run rerequested", "check_run", "check_run/rerequested.payload.json", func(m map[string]any) {
			obj(m, "check_run")["name"], obj(m, "check_run")["external_id"] = "lian-build", "g0123"
		}, JobRebuild, "", func(t *testing.T, j Job) {
			if j.RebuildOf != "g0123" || j.SHA != "d6fde92930d4715a2b49857d24b940956b26d2d3" {
				t.Errorf("%+v", j)
			}
		}},
		{"requested action", "check_run", "check_run/requested_action.payload.json", func(m map[string]any) {
			obj(m, "check_run")["name"] = "lian-build"
			obj(m, "requested_action")["identifier"] = "rebuild-cax41"
		}, JobRebuild, "", func(t *testing.T, j Job) {
			if j.Tier != "cax41" || j.Installation != 690857 {
				t.Errorf("%+v", j)
			}
		}},
		{"someone else's check run", "check_run", "check_run/rerequested.payload.json", nil, "", "is not lian-build's", nil},
		{"installation event", "installation", "installation/created.payload.json", nil, "", "no repository", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Route(tt.event, "delivery-1", fixture(t, tt.file, tt.adapt), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tt.ignore != "" {
				if d.Job != nil || !strings.Contains(d.Ignore, tt.ignore) {
					t.Fatalf("decision %+v, want ignored for %q", d, tt.ignore)
				}
				return
			}
			if d.Job == nil || d.Job.Kind != tt.kind || d.Job.BuildID != BuildIDFor("delivery-1") {
				t.Fatalf("decision %+v (ignore %q)", d.Job, d.Ignore)
			}
			if tt.check != nil {
				tt.check(t, *d.Job)
			}
		})
	}
	if _, err := Route("push", "d", []byte("{not json"), cfg); err == nil {
		t.Error("malformed JSON routed")
	}
}

func TestShouldRefuseRebuild(t *testing.T) {
	for _, tt := range []struct {
		perm, assoc string
		ok          bool
	}{{"admin", "", true}, {"write", "NONE", true}, {"maintain", "", true}, {"read", "OWNER", false}, {"none", "CONTRIBUTOR", false}, {"", "MEMBER", true}, {"", "CONTRIBUTOR", false}} {
		if got := shouldRefuseRebuild(tt.perm, tt.assoc) == ""; got != tt.ok {
			t.Errorf("shouldRefuseRebuild(%q, %q) allows = %v", tt.perm, tt.assoc, got)
		}
	}
}

func TestConfigRefusesToStartWithoutASecret(t *testing.T) {
	_, err := ParseFlags(context.Background(), []string{"--data-dir", t.TempDir()}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "a webhook secret is required") {
		t.Fatalf("err = %v", err)
	}
	empty := t.TempDir() + "/secret"
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFlags(context.Background(), []string{"--webhook-secret-file", empty, "--data-dir", t.TempDir()}, func(string) string { return "" }); err == nil {
		t.Fatal("an empty secret file was accepted")
	}
	if _, err := ParseFlags(context.Background(), []string{"--webhook-secret-file", "/nope"}, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "--webhook-secret-file") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := ParseFlags(context.Background(), []string{"--github-api-url", "ftp://x"}, func(k string) string {
		return map[string]string{"LIAN_GATEWAY_WEBHOOK_SECRET_FILE": empty}[k]
	}); err == nil || !strings.Contains(err.Error(), "--github-api-url") {
		t.Fatalf("bad URL: %v", err)
	}
}

func TestDirectivesTheGatewayCannotHonourAreRefused(t *testing.T) {
	base := frontdoor.Settings{}
	if err := honoured(base, frontdoor.Settings{ComputeProvider: "local"}); err != nil {
		t.Fatal(err)
	}
	err := honoured(base, frontdoor.Settings{ComputeProvider: "hcloud", Directives: "/tmp/src/lian.ncl"})
	if err == nil || !strings.Contains(err.Error(), `lian.ncl: compute_provider "hcloud": this gateway runs builds on "local"`) {
		t.Fatalf("err = %v", err)
	}
	if err := honoured(frontdoor.Settings{ComputeProvider: "hcloud"}, frontdoor.Settings{ComputeProvider: "hcloud"}); err != nil {
		t.Fatal(err)
	}
	err = honoured(frontdoor.Settings{NatsURL: "nats://gw:4222"}, frontdoor.Settings{NatsURL: "nats://elsewhere:4222", Directives: "/tmp/src/lian.ncl"})
	if err == nil || !strings.Contains(err.Error(), "lian.ncl: nats_events.url") {
		t.Fatalf("err = %v", err)
	}
	err = honoured(frontdoor.Settings{StateStore: "/srv/state"}, frontdoor.Settings{StateStore: "/etc", Directives: "/tmp/src/lian.ncl"})
	if err == nil || !strings.Contains(err.Error(), `lian.ncl: state_store "/etc": a repository cannot choose a path`) {
		t.Fatalf("err = %v", err)
	}
}

// A failed fetch's git output is masked for the token (and its header
// form) only: without a token nothing is masked, and no *** is inserted
// between the characters (strings.ReplaceAll with "" did that).
func TestFetchErrorMasksOnlyTheToken(t *testing.T) {
	if got := mask("fatal: unable to access", nil); got != "fatal: unable to access" {
		t.Fatalf("mask without secrets: %q", got)
	}
	if got := mask("token ghs_abc in the output", []string{"ghs_abc", ""}); got != "token *** in the output" {
		t.Fatalf("mask: %q", got)
	}
	err := Fetch(context.Background(), "http://127.0.0.1:1", "octo", "repo", strings.Repeat("a", 40), "", t.TempDir())
	if err == nil || strings.Contains(err.Error(), "*") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("fetch without a token: %v", err)
	}
}
