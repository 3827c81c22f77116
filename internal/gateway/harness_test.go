package gateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/testenv"
)

const testSecret = "webhook-s3cret"

// fakeGitHub is an httptest GitHub API: the endpoints the gateway uses, and a
// record of every call. Installation tokens are checked on every API call.
type fakeGitHub struct {
	srv *httptest.Server
	mu  sync.Mutex

	calls      []string
	checkRuns  map[int64][]map[string]any // id → every create/update body
	at         map[int64][]time.Time      // id → when each body came
	comments   []string
	reactions  []string
	permission map[string]string // user → permission
	prHead     string
	prFork     bool
	nextID     int64
	completed  chan int64
	tokensSeen int
}

func newFakeGitHub(t testing.TB) *fakeGitHub {
	f := &fakeGitHub{checkRuns: map[int64][]map[string]any{}, at: map[int64][]time.Time{}, permission: map[string]string{}, completed: make(chan int64, 1000), nextID: 1000}
	mux := http.NewServeMux()
	body := func(r *http.Request) map[string]any {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		return m
	}
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "token ghs_installation_token" {
				http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
				return
			}
			f.mu.Lock()
			f.calls = append(f.calls, r.Method+" "+r.URL.Path)
			f.mu.Unlock()
			h(w, r)
		}
	}
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", func(w http.ResponseWriter, r *http.Request) {
		if err := verifyAppJWT(t, r.Header.Get("Authorization")); err != nil {
			http.Error(w, `{"message":"`+err.Error()+`"}`, http.StatusUnauthorized)
			return
		}
		if r.PathValue("id") != "1" { // the app's only installation
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
			return
		}
		f.mu.Lock()
		f.tokensSeen++
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token":"ghs_installation_token","expires_at":%q}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	})
	mux.HandleFunc("POST /repos/{o}/{r}/check-runs", authed(func(w http.ResponseWriter, r *http.Request) {
		b := body(r)
		if msg := checkRunLimits(b); msg != "" {
			http.Error(w, `{"message":"Validation Failed: `+msg+`"}`, http.StatusUnprocessableEntity)
			return
		}
		f.mu.Lock()
		f.nextID++
		id := f.nextID
		f.checkRuns[id] = append(f.checkRuns[id], b)
		f.at[id] = append(f.at[id], time.Now())
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%d,"name":"lian-build","head_sha":%q}`, id, b["head_sha"])
	}))
	mux.HandleFunc("GET /repos/{o}/{r}/check-runs/{id}", authed(func(w http.ResponseWriter, r *http.Request) {
		var id int64
		fmt.Sscan(r.PathValue("id"), &id)
		f.mu.Lock()
		bodies, ok := f.checkRuns[id]
		status := "queued"
		for _, b := range bodies {
			if s, _ := b["status"].(string); s != "" {
				status = s
			}
		}
		f.mu.Unlock()
		if !ok {
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"id":%d,"status":%q}`, id, status)
	}))
	mux.HandleFunc("GET /repos/{o}/{r}/commits/{ref}/check-runs", authed(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		var runs []map[string]any
		for id, bodies := range f.checkRuns {
			if bodies[0]["head_sha"] == r.PathValue("ref") && (r.URL.Query().Get("check_name") == "" || r.URL.Query().Get("check_name") == bodies[0]["name"]) {
				runs = append(runs, map[string]any{"id": id, "name": bodies[0]["name"], "head_sha": bodies[0]["head_sha"], "external_id": bodies[0]["external_id"]})
			}
		}
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"total_count": len(runs), "check_runs": runs})
	}))
	mux.HandleFunc("PATCH /repos/{o}/{r}/check-runs/{id}", authed(func(w http.ResponseWriter, r *http.Request) {
		var id int64
		fmt.Sscan(r.PathValue("id"), &id)
		b := body(r)
		if msg := checkRunLimits(b); msg != "" {
			http.Error(w, `{"message":"Validation Failed: `+msg+`"}`, http.StatusUnprocessableEntity)
			return
		}
		f.mu.Lock()
		f.checkRuns[id] = append(f.checkRuns[id], b)
		f.at[id] = append(f.at[id], time.Now())
		f.mu.Unlock()
		if b["status"] == "completed" {
			select {
			case f.completed <- id:
			default: // nobody is waiting (the intake benchmark): never block the API
			}
		}
		fmt.Fprintf(w, `{"id":%d}`, id)
	}))
	mux.HandleFunc("GET /repos/{o}/{r}/pulls/{n}", authed(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		head, fork := f.prHead, f.prFork
		f.mu.Unlock()
		headRepo := r.PathValue("o") + "/" + r.PathValue("r")
		if fork {
			headRepo = "forker/" + r.PathValue("r")
		}
		fmt.Fprintf(w, `{"number":1,"head":{"sha":%q,"repo":{"full_name":%q}},"base":{"repo":{"full_name":"%s/%s"}}}`, head, headRepo, r.PathValue("o"), r.PathValue("r"))
	}))
	mux.HandleFunc("GET /repos/{o}/{r}/collaborators/{u}/permission", authed(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		p, ok := f.permission[r.PathValue("u")]
		f.mu.Unlock()
		if !ok {
			p = "read"
		}
		fmt.Fprintf(w, `{"permission":%q}`, p)
	}))
	mux.HandleFunc("POST /repos/{o}/{r}/issues/comments/{id}/reactions", authed(func(w http.ResponseWriter, r *http.Request) {
		b := body(r)
		f.mu.Lock()
		f.reactions = append(f.reactions, fmt.Sprintf("%s:%v", r.PathValue("id"), b["content"]))
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":1}`)
	}))
	mux.HandleFunc("POST /repos/{o}/{r}/issues/{n}/comments", authed(func(w http.ResponseWriter, r *http.Request) {
		b := body(r)
		f.mu.Lock()
		f.comments = append(f.comments, fmt.Sprint(b["body"]))
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":1}`)
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitHub) waitCompleted(t testing.TB) map[string]any {
	t.Helper()
	select {
	case id := <-f.completed:
		f.mu.Lock()
		defer f.mu.Unlock()
		runs := f.checkRuns[id]
		return runs[len(runs)-1]
	case <-time.After(3 * time.Minute):
		t.Fatal("no check run completed")
	}
	return nil
}

func (f *fakeGitHub) snapshot() (runs int, comments []string, reactions []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.checkRuns), append([]string(nil), f.comments...), append([]string(nil), f.reactions...)
}

// gitServer serves bare repositories through git http-backend (smart HTTP).
type gitServer struct {
	srv  *httptest.Server
	root string
	work string
}

func newGitServer(t testing.TB) *gitServer {
	g := &gitServer{root: t.TempDir(), work: t.TempDir()}
	bare := filepath.Join(g.root, "Codertocat", "Hello-World.git")
	git(t, "", "init", "-q", "--bare", bare)
	git(t, bare, "config", "uploadpack.allowAnySHA1InWant", "true")
	git(t, bare, "config", "http.receivepack", "false")
	git(t, "", "init", "-q", "-b", "master", g.work)
	git(t, g.work, "remote", "add", "origin", bare)
	h := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend", Env: []string{"GIT_PROJECT_ROOT=" + g.root, "GIT_HTTP_EXPORT_ALL=1"}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As GitHub: the installation token, as the x-access-token user's password.
		user, pass, ok := r.BasicAuth()
		if !ok || user != "x-access-token" || pass != "ghs_installation_token" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "auth required (private repository)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// commit writes files, commits and pushes to the served repository; it returns the SHA.
func (g *gitServer) commit(t testing.TB, files map[string]string) string {
	for name, content := range files {
		p := filepath.Join(g.work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, g.work, "add", "-A")
	git(t, g.work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "test")
	git(t, g.work, "push", "-q", "origin", "master")
	return strings.TrimSpace(git(t, g.work, "rev-parse", "HEAD"))
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// checkRunLimits are GitHub's limits on a check run request: title,
// summary and text of at most 65,535 characters, at most 50 annotations
// per request, at most 3 actions (labels ≤ 20, descriptions ≤ 40,
// identifiers ≤ 20 characters).
func checkRunLimits(b map[string]any) string {
	out, _ := b["output"].(map[string]any)
	for _, f := range []string{"title", "summary", "text"} {
		if v, _ := out[f].(string); utf8.RuneCountInString(v) > 65535 {
			return "output." + f + " is longer than 65535 characters"
		}
	}
	if a, _ := out["annotations"].([]any); len(a) > 50 {
		return "more than 50 annotations"
	}
	actions, _ := b["actions"].([]any)
	if len(actions) > 3 {
		return "more than 3 actions"
	}
	for _, a := range actions {
		m, _ := a.(map[string]any)
		for f, n := range map[string]int{"label": 20, "description": 40, "identifier": 20} {
			if v, _ := m[f].(string); utf8.RuneCountInString(v) > n {
				return "action " + f + " longer than " + fmt.Sprint(n)
			}
		}
	}
	return ""
}

var (
	appKeyOnce sync.Once
	appKey     *rsa.PrivateKey
)

// testKey is the test GitHub App's private key (PEM), one per test process:
// the fake GitHub verifies the app's JWTs with its public half.
func testKey(t testing.TB) []byte {
	appKeyOnce.Do(func() {
		var err error
		if appKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(appKey)})
}

// verifyAppJWT checks what GitHub checks of an app's JWT: RS256 signed by the
// app's key, issued by the app (id 42), not expired, at most 10 minutes long.
func verifyAppJWT(t testing.TB, auth string) error {
	testKey(t)
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	parts := strings.Split(tok, ".")
	if !ok || len(parts) != 3 {
		return errors.New("a JWT is required")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&appKey.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("JWT not signed by the app's key")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var claims struct {
		Iss any   `json:"iss"`
		Iat int64 `json:"iat"`
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return err
	}
	now := time.Now().Unix()
	switch {
	case fmt.Sprint(claims.Iss) != "42":
		return fmt.Errorf("JWT issued by %v, not app 42", claims.Iss)
	case claims.Exp < now || claims.Exp-claims.Iat > 600+60:
		return errors.New("JWT expired or longer than 10 minutes")
	}
	return nil
}

type gw struct {
	url    string
	gh     *fakeGitHub
	git    *gitServer
	reg    *testenv.Registry
	state  string
	cancel context.CancelFunc
	done   chan error
	logs   *testenv.SyncBuffer
}

// startGateway runs a real gateway (embedded JetStream, local runners) against the fakes.
func startGateway(t *testing.T, tierMemory string, exec Executor) *gw {
	return startGW(t, tierMemory, exec)
}

func startGatewayForBench(b *testing.B, exec Executor) *gw { return startGW(b, "", exec) }

func startGW(t testing.TB, tierMemory string, exec Executor) *gw {
	t.Helper()
	bk := testenv.Require(t)
	g := &gw{gh: newFakeGitHub(t), git: newGitServer(t), reg: testenv.StartRegistry(t), state: filepath.Join(t.TempDir(), "runners"), logs: &testenv.SyncBuffer{}}
	cfg := Config{
		Listen: "127.0.0.1:0", WebhookSecret: []byte(testSecret), AppID: 42, PrivateKey: testKey(t),
		GitHubURL: g.git.srv.URL, GitHubAPIURL: g.gh.srv.URL, DataDir: t.TempDir(), Concurrency: 2,
		AckWait: 5 * time.Second, ProgressEvery: time.Second, Exec: exec, APIToken: "api-t0ken",
		Build: frontdoor.Settings{
			Registry: g.reg.Host, Insecure: []string{g.reg.Host},
			BuildContexts: []string{"base=oci-layout://" + testenv.BaseLayout(t)},
		},
	}
	for name, v := range map[string]string{"state-dir": g.state, "buildkitd": bk, "local-tier-memory": tierMemory} {
		cfg.Build.SetOption(name, v)
	}
	ready := make(chan string, 1)
	cfg.Ready = func(addr string) { ready <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel, g.done = cancel, make(chan error, 1)
	log := slog.New(slog.NewJSONHandler(g.logs, nil))
	go func() { g.done <- Run(ctx, cfg, log) }()
	select {
	case addr := <-ready:
		g.url = "http://" + addr
	case err := <-g.done:
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not start")
	}
	t.Cleanup(func() {
		cancel()
		<-g.done
		testenv.AssertNoRunners(t, g.state)
	})
	return g
}

// post sends a signed delivery (signature "" = sign it; "-" = no header).
func (g *gw) post(t testing.TB, event, delivery string, body []byte, signature string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.url+"/webhooks/github", bytes.NewReader(body))
	if event != "" {
		req.Header.Set("X-GitHub-Event", event)
	}
	if delivery != "" {
		req.Header.Set("X-GitHub-Delivery", delivery)
	}
	switch signature {
	case "":
		req.Header.Set("X-Hub-Signature-256", Sign([]byte(testSecret), body))
	case "-":
	default:
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	return do(t, req)
}

// do sends req and returns the status code and body.
func do(t testing.TB, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, string(b)
}

func pushPayload(t testing.TB, sha string) []byte {
	return fixture(t, "push/with-installation.payload.json", func(m map[string]any) {
		m["ref"], m["after"], m["deleted"] = "refs/heads/master", sha, false
	})
}

func commentPayload(t testing.TB, body string, mut func(map[string]any)) []byte {
	return fixture(t, "issue_comment/created.with-installation.payload.json", func(m map[string]any) {
		obj(m, "comment")["body"] = body
		obj(m, "issue")["pull_request"] = map[string]any{"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
		if mut != nil {
			mut(m)
		}
	})
}

func output(run map[string]any) map[string]any {
	o, _ := run["output"].(map[string]any)
	return o
}
