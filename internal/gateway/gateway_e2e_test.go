package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/testenv"
)

const appDockerfile = "FROM base\nRUN echo deps > /deps\nCOPY app.txt /app.txt\nRUN cat /app.txt\n"

// A push builds as CI and ends as a completed check run; the next push hits the ci/ cache.
func TestPushBuildsReportAndCache(t *testing.T) {
	g := startGateway(t, "", nil)
	directives := fmt.Sprintf("let D = import \"defaults/build_directives.ncl\" in\nD.make_ci_build { workspace = \"hello-world\", artifact.image = \"%s/team/hello:latest\" }\n", g.reg.Host)
	sha := g.git.commit(t, map[string]string{"Dockerfile": appDockerfile, "app.txt": "v1\n", "lian.ncl": directives})
	if code, body := g.post(t, "push", "push-1", pushPayload(t, sha), ""); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, body)
	}
	run := g.gh.waitCompleted(t)
	if run["conclusion"] != "success" || output(run)["title"] != "cax11 · no OOM retry · 0/3 steps cached" {
		t.Fatalf("check run %v", run)
	}
	summary := fmt.Sprint(output(run)["summary"])
	for _, w := range []string{"| Tier | cax11 (default: generic default", "| Cache hits | 0/3 steps cached |", "| Runner | local · buildkitd pid ", "| Digest |", "| Actor | `ci` |"} {
		if !strings.Contains(summary, w) {
			t.Errorf("summary lacks %q:\n%s", w, summary)
		}
	}
	actions, _ := run["actions"].([]any)
	if len(actions) == 0 || len(actions) > 3 || actions[0].(map[string]any)["identifier"] != "rebuild-cax21" {
		t.Errorf("actions %v", actions)
	}
	sha2 := g.git.commit(t, map[string]string{"app.txt": "v2\n"})
	if code, _ := g.post(t, "push", "push-2", pushPayload(t, sha2), ""); code != http.StatusAccepted {
		t.Fatal(code)
	}
	run = g.gh.waitCompleted(t)
	if run["conclusion"] != "success" || !strings.HasSuffix(fmt.Sprint(output(run)["title"]), "· 1/3 steps cached") {
		t.Fatalf("second push: %v", output(run)["title"])
	}
	if !g.reg.Touched("/v2/ci/hello-world/manifests/cache") {
		t.Error("the CI cache was not written to ci/hello-world")
	}
	if d := g.reg.ManifestDigest(t, "team/hello", "latest"); d == "" || !strings.Contains(fmt.Sprint(output(run)["summary"]), d) {
		t.Errorf("the pushed image %q is not the digest in the summary", d)
	}
}

// `/lian rebuild cax31` on a PR by a writer: 👀, pinned to the head read now, tier cax31 by override.
func TestRebuildCommentOnATier(t *testing.T) {
	g := startGateway(t, "", nil)
	sha := g.git.commit(t, map[string]string{"Dockerfile": appDockerfile, "app.txt": "pr\n"})
	g.gh.mu.Lock()
	g.gh.prHead, g.gh.permission["Codertocat"] = sha, "write"
	g.gh.mu.Unlock()
	if code, body := g.post(t, "issue_comment", "comment-1", commentPayload(t, "Please:\n/lian rebuild cax31", nil), ""); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	run := g.gh.waitCompleted(t)
	title := fmt.Sprint(output(run)["title"])
	if run["conclusion"] != "success" || !strings.HasPrefix(title, "cax31 · ") || !strings.Contains(fmt.Sprint(output(run)["summary"]), "override: runner override cax31") {
		t.Fatalf("check run %v", run)
	}
	_, _, reactions := g.gh.snapshot()
	if len(reactions) != 1 || !strings.HasSuffix(reactions[0], ":eyes") {
		t.Errorf("reactions %v", reactions)
	}
	if !g.reg.Touched("/v2/dev/codertocat-hello-world/") {
		t.Error("the session did not use dev/codertocat-hello-world")
	}
}

// An OOM build shows its retry; a failing one is annotated at its Dockerfile line.
func TestOOMAndFailureReports(t *testing.T) {
	g := startGateway(t, "cax11=128MiB,cax21=1GiB", nil)
	sha := g.git.commit(t, map[string]string{"Dockerfile": "FROM base\nRUN dd if=/dev/zero of=/dev/null bs=400M count=1\n"})
	g.post(t, "push", "push-oom", pushPayload(t, sha), "")
	run := g.gh.waitCompleted(t)
	if run["conclusion"] != "success" || output(run)["title"] != "cax21 · 1 OOM retry · 0/1 steps cached" {
		t.Fatalf("OOM build: %v / %v", run["conclusion"], output(run)["title"])
	}
	sha = g.git.commit(t, map[string]string{"Dockerfile": "FROM base\nRUN true\nRUN echo broken && exit 3\n"})
	g.post(t, "push", "push-fail", pushPayload(t, sha), "")
	run = g.gh.waitCompleted(t)
	anns, _ := output(run)["annotations"].([]any)
	if run["conclusion"] != "failure" || len(anns) != 1 {
		t.Fatalf("failing build: %v, annotations %v", run["conclusion"], anns)
	}
	a := anns[0].(map[string]any)
	if a["path"] != "Dockerfile" || a["start_line"] != 3.0 || a["annotation_level"] != "failure" {
		t.Fatalf("annotation %v", a)
	}
	if !strings.Contains(fmt.Sprint(output(run)["text"]), "broken") {
		t.Errorf("log tail %v", output(run)["text"])
	}
}

// Every refusal gets its documented response, starts no build, and the server lives on.
func TestSecurity(t *testing.T) {
	g := startGateway(t, "", nil)
	sha := g.git.commit(t, map[string]string{"Dockerfile": appDockerfile, "app.txt": "x\n"})
	g.gh.mu.Lock()
	g.gh.prHead = sha
	g.gh.permission["Codertocat"] = "read"
	g.gh.mu.Unlock()
	push := pushPayload(t, sha)
	big := make([]byte, MaxBody+10)
	cases := []struct {
		name, event, delivery string
		body                  []byte
		sig                   string
		code                  int
		contains              string
	}{
		{"missing signature", "push", "s1", push, "-", 401, "missing header X-Hub-Signature-256"},
		{"bad signature", "push", "s2", push, Sign([]byte("wrong"), push), 401, "does not match"},
		{"missing event", "", "s3", push, "", 400, "X-GitHub-Event"},
		{"missing delivery", "push", "", push, "", 400, "X-GitHub-Delivery"},
		{"malformed JSON", "push", "s4", []byte("{nope"), "", 400, "malformed JSON"},
		// The signature is checked before anything reads the body: a bad one on
		// a malformed body is a 401, never the router's 400.
		{"bad signature, malformed JSON", "push", "s10", []byte("{nope"), Sign([]byte("wrong"), []byte("{nope")), 401, "does not match"},
		{"no signature, malformed JSON", "push", "s11", []byte(`{"repository": [`), "-", 401, "missing header X-Hub-Signature-256"},
		{"oversized", "push", "s5", big, "", 413, "larger than 25 MB"},
		{"ping", "ping", "s6", fixture(t, "ping/with-app_id.payload.json", nil), "", 200, "pong"},
		{"edited comment", "issue_comment", "s7", fixture(t, "issue_comment/edited.payload.json", func(m map[string]any) {
			obj(m, "comment")["body"] = "/lian rebuild"
			obj(m, "issue")["pull_request"] = map[string]any{}
			m["installation"] = map[string]any{"id": 1}
		}), "", 200, "comment edited"},
		{"bot", "issue_comment", "s8", commentPayload(t, "/lian rebuild", func(m map[string]any) {
			obj(obj(m, "comment"), "user")["type"] = "Bot"
		}), "", 200, "bot"},
		{"code block", "issue_comment", "s9", commentPayload(t, "```\n/lian rebuild\n```", nil), "", 200, "no /lian command"},
	}
	for _, c := range cases {
		code, body := g.post(t, c.event, c.delivery, c.body, c.sig)
		if code != c.code || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, body, c.code, c.contains)
		}
	}
	// Replayed delivery: accepted once, then answered as a duplicate.
	if code, _ := g.post(t, "issue_comment", "replay", commentPayload(t, "/lian rebuild huge", nil), ""); code != 202 {
		t.Fatalf("first delivery %d", code)
	}
	if code, body := g.post(t, "issue_comment", "replay", commentPayload(t, "/lian rebuild huge", nil), ""); code != 200 || !strings.Contains(body, "duplicate") {
		t.Fatalf("replay: %d %s", code, body)
	}
	// Queued comments that must be answered, not built.
	g.post(t, "issue_comment", "noncollab", commentPayload(t, "/lian rebuild", nil), "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, comments, _ := g.gh.snapshot()
		joined := strings.Join(comments, "\n---\n")
		if strings.Contains(joined, "`huge` is not a runner tier. Valid tiers: `cax11`") && strings.Contains(joined, "only people with write access") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replies: %q", comments)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A fork PR, by a writer: refused with an explanation.
	g.gh.mu.Lock()
	g.gh.permission["Codertocat"], g.gh.prFork = "write", true
	g.gh.mu.Unlock()
	g.post(t, "issue_comment", "fork", commentPayload(t, "/lian rebuild", nil), "")
	for {
		_, comments, _ := g.gh.snapshot()
		if strings.Contains(strings.Join(comments, "\n"), "comes from a fork") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fork reply missing: %q", comments)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if runs, _, _ := g.gh.snapshot(); runs != 0 {
		t.Fatalf("%d check runs were created; none of these may build", runs)
	}
	resp, err := http.Get(g.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the server did not survive: %v", err)
	}
	if strings.Contains(g.logs.String(), "ghs_installation_token") || strings.Contains(g.logs.String(), testSecret) {
		t.Error("a token or the webhook secret is in the logs")
	}
}

func TestOpsEndpoints(t *testing.T) {
	g := startGateway(t, "", nil)
	g.post(t, "ping", "ops-ping", fixture(t, "ping/with-app_id.payload.json", nil), "")
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, g.url+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return do(t, req)
	}
	if code, _ := get("/healthz", ""); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := get("/readyz", ""); code != 200 {
		t.Errorf("readyz %d", code)
	}
	code, body := get("/metrics", "")
	if code != 200 || !strings.Contains(body, `lian_build_deliveries_total{event="ping",outcome="pong"} 1`) || !strings.Contains(body, "lian_build_queue_depth") || !strings.Contains(body, `lian_build_intake_seconds_count 1`) {
		t.Errorf("metrics %d:\n%s", code, body)
	}
	if code, _ := get("/api/v1/p95?workspace=app", ""); code != 401 {
		t.Errorf("API without a token: %d", code)
	}
	if code, _ := get("/api/v1/p95?workspace=app", "wrong"); code != 401 {
		t.Errorf("API with a wrong token: %d", code)
	}
	post := func(method, path, body string) int {
		req, _ := http.NewRequest(method, g.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer api-t0ken")
		req.Header.Set("Content-Type", "application/json")
		code, _ := do(t, req)
		return code
	}
	for i := 0; i < 3; i++ {
		if c := post(http.MethodPost, "/api/v1/metrics", fmt.Sprintf(`{"workspace":"app","build_id":"b%d","tier":"cax21","cpu_p95":5.2,"mem_p95_bytes":%d}`, i, 11<<30)); c != 202 {
			t.Fatalf("post metrics: %d", c)
		}
	}
	if c := post(http.MethodPost, "/api/v1/metrics", `{"workspace":"App/../x"}`); c != 400 {
		t.Errorf("bad workspace accepted: %d", c)
	}
	if c := post(http.MethodPost, "/api/v1/approvals/app", ""); c != 200 {
		t.Fatalf("approve: %d", c)
	}
	code, body = get("/api/v1/p95?workspace=app", "api-t0ken")
	if code != 200 || !strings.Contains(body, `"approved":true`) || !strings.Contains(body, `"cpu_p95":5.2`) || !strings.Contains(body, `"samples":3`) {
		t.Errorf("p95: %d %s", code, body)
	}
	if c := post(http.MethodDelete, "/api/v1/approvals/app", ""); c != 200 {
		t.Fatalf("revoke: %d", c)
	}
}

// "Re-run" of a check run repeats the build with its actor; a button rebuilds
// on the tier it names; a newer push to the same branch cancels the older build.
func TestRerunButtonAndSupersededPush(t *testing.T) {
	g := startGateway(t, "", nil)
	sha := g.git.commit(t, map[string]string{"Dockerfile": appDockerfile, "app.txt": "v1\n"})
	g.post(t, "push", "rerun-base", pushPayload(t, sha), "")
	first := g.gh.waitCompleted(t)
	buildID := fmt.Sprint(first["external_id"])
	checkRun := func(action string, adapt func(map[string]any)) []byte {
		file := "check_run/rerequested.payload.json"
		if action == "requested_action" {
			file = "check_run/requested_action.payload.json"
		}
		return fixture(t, file, func(m map[string]any) {
			cr := obj(m, "check_run")
			cr["name"], cr["external_id"], cr["head_sha"] = "lian-build", buildID, sha
			m["repository"] = map[string]any{"name": "Hello-World", "owner": map[string]any{"login": "Codertocat"}, "default_branch": "master"}
			m["installation"] = map[string]any{"id": 1}
			if adapt != nil {
				adapt(m)
			}
		})
	}
	if code, body := g.post(t, "check_run", "rerun-1", checkRun("rerequested", nil), ""); code != 202 {
		t.Fatalf("rerequested: %d %s", code, body)
	}
	rerun := g.gh.waitCompleted(t)
	if rerun["conclusion"] != "success" || rerun["external_id"] == buildID || !strings.Contains(fmt.Sprint(output(rerun)["summary"]), "| Actor | `ci` |") {
		t.Fatalf("rerun %v", rerun)
	}
	if code, _ := g.post(t, "check_run", "rerun-2", checkRun("requested_action", func(m map[string]any) {
		obj(m, "requested_action")["identifier"] = "rebuild-cax21"
	}), ""); code != 202 {
		t.Fatal(code)
	}
	button := g.gh.waitCompleted(t)
	if !strings.HasPrefix(fmt.Sprint(output(button)["title"]), "cax21 · ") {
		t.Fatalf("requested_action: %v", output(button)["title"])
	}

	slow := g.git.commit(t, map[string]string{"Dockerfile": "FROM base\nRUN echo slow-build && sleep 30\n"})
	g.post(t, "push", "slow", pushPayload(t, slow), "")
	for deadline := time.Now().Add(60 * time.Second); len(testenvLeases(g)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow build did not start")
		}
	}
	fast := g.git.commit(t, map[string]string{"Dockerfile": appDockerfile})
	g.post(t, "push", "fast", pushPayload(t, fast), "")
	results := map[string]string{}
	for i := 0; i < 2; i++ {
		r := g.gh.waitCompleted(t)
		results[fmt.Sprint(r["conclusion"])] = fmt.Sprint(output(r)["title"]) + " " + fmt.Sprint(output(r)["summary"])
	}
	if !strings.Contains(results["cancelled"], "superseded by a newer push") || results["success"] == "" {
		t.Fatalf("results %v", results)
	}
}

func testenvLeases(g *gw) []string { return testenv.LeaseIDs(g.state) }
