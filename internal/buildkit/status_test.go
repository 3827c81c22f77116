package buildkit

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

func TestIsStep(t *testing.T) {
	for name, want := range map[string]bool{
		"[1/3] RUN make":                        true,
		"[build 2/5] COPY . .":                  true,
		"[stage-1 1/1] COPY --from=build / /":   true,
		"[internal] load build definition":      false,
		"[context base] load from client":       false,
		"exporting to image":                    false,
		"[linux/arm64 build 2/3] RUN cc":        true, // multi-platform builds prefix the platform
		"resolve image config for docker-image": false,
	} {
		if IsStep(name) != want {
			t.Errorf("IsStep(%q) = %v", name, !want)
		}
	}
}

func TestTrackerCountsAndFailure(t *testing.T) {
	now := time.Now()
	d := func(s string) digest.Digest { return digest.FromString(s) }
	tr := newTracker()
	tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{
		{Digest: d("int"), Name: "[internal] load build definition", Completed: &now},
		{Digest: d("a"), Name: "[1/3] RUN a", Cached: true, Completed: &now},
		{Digest: d("b"), Name: "[2/3] COPY b /b"},
	}})
	// A vertex repeats across updates; it counts once.
	tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{
		{Digest: d("b"), Name: "[2/3] COPY b /b", Completed: &now},
		{Digest: d("c"), Name: "[3/3] RUN c"},
	}, Logs: []*client.VertexLog{
		{Vertex: d("c"), Data: []byte("line one\nline t")},
		{Vertex: d("c"), Data: []byte("wo\npartial")},
	}})
	tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{
		{Digest: d("c"), Name: "[3/3] RUN c", Error: "exit code: 2", Completed: &now},
	}})
	if c := tr.counts(false); c != (StepCounts{Total: 3, Cached: 1, Cacheable: 3}) {
		t.Errorf("counts = %+v", c)
	}
	if c := tr.counts(true); c.Cacheable != 0 {
		t.Errorf("--no-cache counts = %+v", c)
	}
	name, msg, logs, ok := tr.failed()
	if !ok || name != "[3/3] RUN c" || msg != "exit code: 2" || strings.Join(logs, "|") != "line one|line two|partial" {
		t.Errorf("failed = %q %q %q %v", name, msg, logs, ok)
	}
}

func TestRedactor(t *testing.T) {
	var out bytes.Buffer
	r := NewRedactor(&out, [][]byte{[]byte("hunter22\n"), []byte("x"), []byte("multi\nline-secret")})
	// The secret split across writes is still masked.
	for _, chunk := range []string{"pass: hun", "ter22 ok\nsecond ", "line-secret and x\n", "tail hunter22"} {
		if _, err := r.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "pass: *** ok\nsecond *** and x\ntail ***"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}
