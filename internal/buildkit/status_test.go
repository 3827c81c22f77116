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
	if c := tr.counts(false); c != (StepCounts{Total: 3, Cached: 1, Cacheable: 3, Changed: 2}) {
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

// A build whose every step is cached, but for FROMs of images already
// there (done, not cached: they resolve a reference), changed nothing; a
// FROM that fetched a layer did, and so did any step that ran.
func TestUnchangedCountsFromsThatFetchedNothing(t *testing.T) {
	now := time.Now()
	d := func(s string) digest.Digest { return digest.FromString(s) }
	steps := func(extra ...*client.VertexStatus) StepCounts {
		tr := newTracker()
		tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{
			{Digest: d("from"), Name: "[build 1/3] FROM reg/rust:1@sha256:93a2", Completed: &now},
			{Digest: d("from2"), Name: "[linux/arm64 stage-1 1/2] FROM reg/debian:12", Completed: &now},
			{Digest: d("run"), Name: "[build 2/3] RUN cargo build", Cached: true, Completed: &now},
			{Digest: d("copy"), Name: "[stage-1 2/2] COPY --from=build /app /app", Cached: true, Completed: &now},
		}, Statuses: append([]*client.VertexStatus{
			{ID: "resolve reg/rust:1@sha256:93a2", Vertex: d("from"), Completed: &now},
			{ID: "resolve reg/debian:12", Vertex: d("from2"), Completed: &now},
		}, extra...)})
		return tr.counts(false)
	}
	if c := steps(); !c.Unchanged() || c.Changed != 0 || c.Cached != 2 || c.Total != 4 {
		t.Errorf("FROMs of images already there: %+v, unchanged %v", c, c.Unchanged())
	}
	if c := steps(&client.VertexStatus{ID: "sha256:8d12", Vertex: d("from2"), Total: 1 << 20, Current: 1 << 20}); c.Unchanged() || c.Changed != 1 {
		t.Errorf("a FROM that fetched a layer: %+v", c)
	}
	if c := steps(&client.VertexStatus{ID: "extracting sha256:8d12", Vertex: d("from")}); c.Unchanged() {
		t.Errorf("a FROM that extracted a layer: %+v", c)
	}
	tr := newTracker()
	tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: d("int"), Name: "[internal] load build definition", Completed: &now}}})
	if c := tr.counts(false); c.Unchanged() {
		t.Errorf("a build of no step is not unchanged: %+v", c)
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
