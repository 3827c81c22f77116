package githubapp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v66/github"
)

func key(t *testing.T) []byte {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// The client against an httptest mux: installation token, rate-limit retry
// after Retry-After, and annotations beyond 50 sent in further requests.
func TestAppAgainstAMux(t *testing.T) {
	var mu sync.Mutex
	var patches []github.UpdateCheckRunOptions
	limited := true
	mux := http.NewServeMux()
	mux.HandleFunc("POST /app/installations/7/access_tokens", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"token":"ghs_x","expires_at":%q}`, time.Now().Add(time.Hour).Format(time.RFC3339))
	})
	mux.HandleFunc("POST /repos/o/r/check-runs", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if limited {
			limited = false
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(403)
			fmt.Fprint(w, `{"message":"You have exceeded a secondary rate limit","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`)
			return
		}
		if r.Header.Get("Authorization") != "token ghs_x" {
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(201)
		fmt.Fprint(w, `{"id":99}`)
	})
	mux.HandleFunc("GET /repos/o/r/commits/{sha}/check-runs", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("check_name") != "lian-build" {
			w.WriteHeader(400)
			return
		}
		if r.PathValue("sha") == "def" { // a build whose gateway died after creating its check run
			fmt.Fprint(w, `{"total_count":2,"check_runs":[{"id":5,"external_id":"other"},{"id":77,"external_id":"b2"}]}`)
			return
		}
		fmt.Fprint(w, `{"total_count":0,"check_runs":[]}`)
	})
	mux.HandleFunc("PATCH /repos/o/r/check-runs/99", func(w http.ResponseWriter, r *http.Request) {
		var o github.UpdateCheckRunOptions
		_ = json.NewDecoder(r.Body).Decode(&o)
		mu.Lock()
		patches = append(patches, o)
		mu.Unlock()
		fmt.Fprint(w, `{"id":99}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	app, err := NewApp(1, key(t), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	id, err := app.CreateCheckRun(context.Background(), 7, "o", "r", CheckRun{HeadSHA: "abc", ExternalID: "b1", Status: "queued"})
	if err != nil || id != 99 {
		t.Fatalf("create: %d %v", id, err)
	}
	if time.Since(start) < time.Second {
		t.Error("the rate-limited request was retried before Retry-After")
	}
	if id, err := app.CreateCheckRun(context.Background(), 7, "o", "r", CheckRun{HeadSHA: "def", ExternalID: "b2", Status: "queued"}); err != nil || id != 77 {
		t.Fatalf("the build's existing check run was not reused: %d %v", id, err)
	}
	var anns []*github.CheckRunAnnotation
	for i := 0; i < 120; i++ {
		anns = append(anns, &github.CheckRunAnnotation{Path: github.String("Dockerfile"), StartLine: github.Int(i + 1), EndLine: github.Int(i + 1), AnnotationLevel: github.String("warning"), Message: github.String("m")})
	}
	err = app.UpdateCheckRun(context.Background(), 7, "o", "r", 99, CheckRun{Status: "completed", Conclusion: "failure", Title: "t", Summary: "s", Annotations: anns,
		Actions: threeActions()})
	if err != nil {
		t.Fatal(err)
	}
	if len(patches) != 3 || len(patches[0].Output.Annotations) != 50 || len(patches[1].Output.Annotations) != 50 || len(patches[2].Output.Annotations) != 20 {
		t.Fatalf("%d requests", len(patches))
	}
	if patches[0].GetConclusion() != "failure" || len(patches[0].Actions) != 3 {
		t.Errorf("first update %+v", patches[0])
	}
	if _, err := NewApp(0, key(t), srv.URL); err == nil {
		t.Error("an app without an id was accepted")
	}
	if _, err := NewApp(1, []byte("not a key"), srv.URL); err == nil || !strings.Contains(err.Error(), "--private-key-file") {
		t.Errorf("bad key: %v", err)
	}
}

// threeActions are the buttons a check run carries at most.
func threeActions() []*github.CheckRunAction {
	var out []*github.CheckRunAction
	for _, t := range []string{"cax21", "cax31", "cax41"} {
		out = append(out, &github.CheckRunAction{Label: "Rebuild on " + t, Description: "Run this build again on " + t, Identifier: "rebuild-" + t})
	}
	return out
}
