package buildkit

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
)

func TestStatusRedactorMasksSplitSecrets(t *testing.T) {
	const secret = "s3cr3t-T0KEN-4f9a1c"
	sr := newStatusRedactor(NewRedactor(nil, [][]byte{[]byte(secret)}))
	now := time.Now()
	var got bytes.Buffer
	feed := func(s *client.SolveStatus) {
		out := sr.redact(s)
		for _, l := range out.Logs {
			got.Write(l.Data)
		}
		for _, v := range out.Vertexes {
			if strings.Contains(v.Name+v.Error, secret) {
				t.Errorf("vertex %q / %q not masked", v.Name, v.Error)
			}
		}
		for _, w := range out.Warnings {
			if bytes.Contains(w.Short, []byte(secret)) || bytes.Contains(bytes.Join(w.Detail, nil), []byte(secret)) {
				t.Error("warning not masked")
			}
		}
	}
	feed(&client.SolveStatus{
		Vertexes: []*client.Vertex{{Digest: "sha256:a", Name: "RUN echo " + secret, Error: "failed: " + secret}},
		Logs:     []*client.VertexLog{{Vertex: "sha256:a", Stream: 1, Data: []byte("the token is s3cr3t-T0"), Timestamp: now}},
		Warnings: []*client.VertexWarning{{Vertex: "sha256:a", Short: []byte(secret), Detail: [][]byte{[]byte("x " + secret)}}},
	})
	if got.Len() != 0 {
		t.Fatalf("a partial line was emitted: %q", got.String())
	}
	feed(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: "sha256:a", Stream: 1, Data: []byte("KEN-4f9a1c\nnext " + secret[:5]), Timestamp: now}}})
	feed(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: "sha256:a", Completed: &now}},
		Logs: []*client.VertexLog{{Vertex: "sha256:a", Stream: 1, Data: []byte(secret[5:]), Timestamp: now}}})
	if s := sr.flush(); s != nil {
		t.Fatalf("flush after completion returned %d logs", len(s.Logs))
	}
	if want := "the token is ***\nnext ***"; got.String() != want {
		t.Fatalf("logs = %q, want %q", got.String(), want)
	}
	// Without secrets the stream passes through untouched.
	plain := newStatusRedactor(NewRedactor(nil, nil))
	s := &client.SolveStatus{Logs: []*client.VertexLog{{Data: []byte("partial")}}}
	if plain.redact(s) != s || plain.flush() != nil {
		t.Fatal("no secrets: the status must pass through")
	}
}
