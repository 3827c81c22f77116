package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/testenv"
)

// hostileRequest is one row of testdata/hostile/webhooks.json.
type hostileRequest struct {
	Name           string         `json:"name"`
	Event          string         `json:"event"`
	Delivery       string         `json:"delivery"`
	DeliveryRepeat int            `json:"delivery_repeat"`
	Signature      string         `json:"signature"`
	Fixture        string         `json:"fixture"`
	Set            map[string]any `json:"set"`
	Body           *string        `json:"body"`
	Status         int            `json:"status"`
	Words          []string       `json:"words"`
}

func loadHostileWebhooks(t *testing.T) []hostileRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "testdata", "hostile", "webhooks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []hostileRequest
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 20 {
		t.Fatalf("only %d rows in the corpus", len(rows))
	}
	return rows
}

// setPath sets (or, for nil, deletes) a dotted path in a JSON object.
func setPath(m map[string]any, path string, v any) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	if v == nil {
		delete(m, keys[len(keys)-1])
		return
	}
	m[keys[len(keys)-1]] = v
}

func (r hostileRequest) body(t *testing.T) []byte {
	if r.Body != nil {
		return []byte(*r.Body)
	}
	return fixture(t, r.Fixture, func(m map[string]any) {
		for p, v := range r.Set {
			setPath(m, p, v)
		}
	})
}

// Every hostile request gets its status and a message that names the header
// or field; afterwards the gateway is healthy, reached GitHub's API on no
// path a payload chose, ran git with no payload option, and still builds.
func TestHostileWebhooks(t *testing.T) {
	g := startGateway(t, "", nil)
	for _, r := range loadHostileWebhooks(t) {
		t.Run(r.Name, func(t *testing.T) {
			delivery := r.Delivery
			if r.DeliveryRepeat > 0 {
				delivery = strings.Repeat(r.Delivery, r.DeliveryRepeat)
			}
			code, resp := g.post(t, r.Event, delivery, r.body(t), r.Signature)
			if code != r.Status {
				t.Fatalf("status %d, want %d: %s", code, r.Status, resp)
			}
			for _, w := range r.Words {
				if !strings.Contains(resp, w) {
					t.Errorf("response lacks %q: %s", w, resp)
				}
			}
			if len(resp) > 2000 {
				t.Errorf("response of %d bytes echoes the input", len(resp))
			}
		})
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		req, _ := http.NewRequest(http.MethodGet, g.url+path, nil)
		if code, body := do(t, req); code != http.StatusOK {
			t.Fatalf("%s after the corpus: %d %s", path, code, body)
		}
	}
	if _, err := os.Stat("/tmp/lian-pwned"); err == nil {
		t.Fatal("git ran the payload's --upload-pack")
	}
	sha := g.git.commit(t, map[string]string{"Dockerfile": appDockerfile, "app.txt": "after the corpus\n"})
	if code, body := g.post(t, "push", "after-hostile", pushPayload(t, sha), ""); code != http.StatusAccepted {
		t.Fatalf("normal push after the corpus: %d %s", code, body)
	}
	if run := g.gh.waitCompleted(t); run["conclusion"] != "success" {
		t.Fatalf("normal build after the corpus: %v", run)
	}
	g.gh.mu.Lock()
	defer g.gh.mu.Unlock()
	for _, c := range g.gh.calls {
		if !strings.Contains(c, "/repos/Codertocat/Hello-World/") {
			t.Errorf("GitHub API call outside the repository: %s", c)
		}
	}
}

// A repository whose lian.ncl would fill memory (the exponential string)
// gets a failed check run that says why; the gateway stays up and the next
// push builds.
func TestPoisonRepositoryIsContained(t *testing.T) {
	g := startGateway(t, "", nil)
	var bomb strings.Builder
	bomb.WriteString("let a0 = \"xxxxxxxxxxxxxxxx\" in\n")
	for i := 1; i < 59; i++ {
		fmt.Fprintf(&bomb, "let a%d = \"%%{a%d}%%{a%d}\" in\n", i, i-1, i-1)
	}
	bomb.WriteString("let D = import \"defaults/build_directives.ncl\" in\nD.make_ci_build { workspace = a58, artifact.image = \"x\" }\n")
	sha := g.git.commit(t, map[string]string{"Dockerfile": appDockerfile, "app.txt": "x\n", "lian.ncl": bomb.String()})
	if code, body := g.post(t, "push", "poison", pushPayload(t, sha), ""); code != http.StatusAccepted {
		t.Fatalf("poison push: %d %s", code, body)
	}
	run := g.gh.waitCompleted(t)
	text := fmt.Sprint(output(run))
	if run["conclusion"] != "failure" || !strings.Contains(text, "allocates more than") || !strings.Contains(text, "lian.ncl:") || strings.Contains(text, "/tmp/") {
		t.Fatalf("poison check run: %v", run)
	}
	sha2 := g.git.commit(t, map[string]string{"lian.ncl": fmt.Sprintf("let D = import \"defaults/build_directives.ncl\" in\nD.make_ci_build { workspace = \"hello-world\", artifact.image = \"%s/team/hello:latest\" }\n", g.reg.Host)})
	if code, body := g.post(t, "push", "after-poison", pushPayload(t, sha2), ""); code != http.StatusAccepted {
		t.Fatalf("push after the poison: %d %s", code, body)
	}
	if run := g.gh.waitCompleted(t); run["conclusion"] != "success" {
		t.Fatalf("build after the poison: %v", run)
	}
}
