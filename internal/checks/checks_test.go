package checks

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
	"unicode/utf8"

	"github.com/google/go-github/v66/github"
	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
)

func TestTitleAndConclusion(t *testing.T) {
	tests := []struct {
		r     pipeline.Result
		title string
		concl string
	}{
		{pipeline.Result{Outcome: pipeline.OutcomeSuccess, Tier: "cax21", OOMRetries: 1, StepsCached: 14, StepsTotal: 18}, "cax21 · 1 OOM retry · 14/18 steps cached", "success"},
		{pipeline.Result{Outcome: pipeline.OutcomeSuccess, Tier: "cax11", StepsTotal: 3}, "cax11 · no OOM retry · 0/3 steps cached", "success"},
		{pipeline.Result{Outcome: pipeline.OutcomeOOM, Tier: "cax21", OOMRetries: 1}, "out of memory · cax21 · 1 OOM retry · 0/0 steps cached", "failure"},
		{pipeline.Result{Outcome: pipeline.OutcomeFailure, Tier: "cax11"}, "failed · cax11 · no OOM retry · 0/0 steps cached", "failure"},
		{pipeline.Result{Outcome: pipeline.OutcomeTimeout, Tier: "cax11"}, "time budget exceeded · cax11 · no OOM retry · 0/0 steps cached", "timed_out"},
		{pipeline.Result{Outcome: pipeline.OutcomeCanceled, Tier: "cax11"}, "canceled · cax11 · no OOM retry · 0/0 steps cached", "cancelled"},
	}
	for _, tt := range tests {
		if got := Title(tt.r); got != tt.title {
			t.Errorf("Title = %q, want %q", got, tt.title)
		}
		if got := Conclusion(tt.r); got != tt.concl {
			t.Errorf("Conclusion(%s) = %q", tt.r.Outcome, got)
		}
	}
}

func TestActionsAndAnnotations(t *testing.T) {
	acts := Actions(pipeline.Result{Tier: "cax21"}, sizing.HCloud)
	if len(acts) != MaxActions || acts[0].Identifier != "rebuild-cax31" {
		t.Fatalf("actions %+v", acts)
	}
	for _, a := range acts {
		if len(a.Identifier) > MaxActionID || a.Identifier == "rebuild-cax21" {
			t.Errorf("action %+v", a)
		}
	}
	if a := Annotations(pipeline.Result{}, "Dockerfile"); a != nil {
		t.Errorf("annotations without a failure: %v", a)
	}
	a := Annotations(pipeline.Result{Failure: &buildkit.Failure{Step: "[2/3] RUN x", Error: "boom", Line: 7, ExitCode: 3}}, "Dockerfile")
	if len(a) != 1 || a[0].GetStartLine() != 7 || a[0].GetPath() != "Dockerfile" || !strings.Contains(a[0].GetMessage(), "exit code 3") {
		t.Fatalf("annotation %+v", a)
	}
}

func TestTruncateRespectsLimits(t *testing.T) {
	long := strings.Repeat("é", MaxText+100)
	for _, s := range []string{Truncate(long, MaxText), TruncateHead(long, MaxText)} {
		if n := utf8.RuneCountInString(s); n > MaxText || !strings.Contains(s, "truncated") {
			t.Errorf("%d characters", n)
		}
	}
	res := pipeline.Result{Failure: &buildkit.Failure{LogTail: []string{strings.Repeat("x", 70000), "the end"}}}
	if txt := Text(res); utf8.RuneCountInString(txt) > MaxText || !strings.Contains(txt, "the end") {
		t.Error("Text must keep the end of the log within the limit")
	}
	// A 100,000-character error: summary and text stay within GitHub's limit.
	huge := pipeline.Result{Outcome: pipeline.OutcomeError, Error: strings.Repeat("e", 100000), Failure: &buildkit.Failure{Error: strings.Repeat("f", 100000), LogTail: []string{strings.Repeat("l", 100000)}}}
	if n := utf8.RuneCountInString(Summary(huge)); n > MaxText {
		t.Errorf("summary of %d characters", n)
	}
	if n := utf8.RuneCountInString(Text(huge)); n > MaxText {
		t.Errorf("text of %d characters", n)
	}
}

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
		Actions: Actions(pipeline.Result{Tier: "cax11"}, sizing.HCloud)})
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
