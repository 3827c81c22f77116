package buildkit

import (
	"regexp"
	"strings"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// stepName matches the vertices the dockerfile frontend names after
// instructions: "[2/5] RUN …", "[build 3/4] COPY …", "[linux/arm64 build 3/4] …". Internal vertices
// ("[internal] load …", "exporting to image", "[context base] …") are not steps.
var stepName = regexp.MustCompile(`^\[(?:[^\]]+ )?\d+/\d+\] `)

// IsStep reports whether a vertex name is a Dockerfile instruction.
func IsStep(name string) bool { return stepName.MatchString(name) }

// tracker folds the status stream into step counts, the failing step and logs.
// It is fed from a single goroutine.
type tracker struct {
	vertices map[digest.Digest]*vertexState
	order    []digest.Digest
	maxLog   int // lines kept per vertex
}

type vertexState struct {
	name      string
	step      bool
	from      bool // a FROM step: it changes nothing unless it fetches
	fetched   bool // it reported progress other than resolving a reference
	cached    bool
	completed bool
	err       string
	logs      []string
	partial   string
}

func newTracker() *tracker {
	return &tracker{vertices: map[digest.Digest]*vertexState{}, maxLog: 200}
}

func (t *tracker) vertex(d digest.Digest) *vertexState {
	v, ok := t.vertices[d]
	if !ok {
		v = &vertexState{}
		t.vertices[d] = v
		t.order = append(t.order, d)
	}
	return v
}

func (t *tracker) update(s *client.SolveStatus) {
	for _, v := range s.Vertexes {
		st := t.vertex(v.Digest)
		if v.Name != "" {
			st.name = v.Name
			st.step = IsStep(v.Name)
			st.from = st.step && strings.HasPrefix(stepName.ReplaceAllString(v.Name, ""), "FROM ")
		}
		if v.Cached {
			st.cached = true
		}
		if v.Completed != nil {
			st.completed = true
		}
		if v.Error != "" {
			st.err = v.Error
		}
	}
	for _, vs := range s.Statuses {
		if !strings.HasPrefix(vs.ID, "resolve ") {
			t.vertex(vs.Vertex).fetched = true
		}
	}
	for _, l := range s.Logs {
		st := t.vertex(l.Vertex)
		data := st.partial + string(l.Data)
		lines := strings.Split(data, "\n")
		st.partial = lines[len(lines)-1]
		st.logs = append(st.logs, lines[:len(lines)-1]...)
		if len(st.logs) > t.maxLog {
			st.logs = st.logs[len(st.logs)-t.maxLog:]
		}
	}
}

// StepCounts are the Dockerfile steps of a build.
type StepCounts struct {
	Total     int `json:"steps_total"`
	Cached    int `json:"steps_cached"`
	Cacheable int `json:"steps_cacheable"`
	// Changed counts the steps that may have changed the runner's state:
	// those that ran, but not a FROM whose image was already there (it
	// resolves a reference and reports itself done, not cached).
	Changed int `json:"-"`
}

// Unchanged says that a build ran no step: every one came from the cache
// or was a FROM that fetched nothing.
func (c StepCounts) Unchanged() bool { return c.Total > 0 && c.Changed == 0 }

func (t *tracker) counts(noCache bool) StepCounts {
	var c StepCounts
	for _, d := range t.order {
		v := t.vertices[d]
		if !v.step {
			continue
		}
		c.Total++
		switch {
		case v.cached:
			c.Cached++
		case !v.from || v.fetched:
			c.Changed++
		}
	}
	if !noCache {
		c.Cacheable = c.Total
	}
	return c
}

// failed returns the first vertex that reported an error, with its log tail.
func (t *tracker) failed() (name, errMsg string, logs []string, ok bool) {
	for _, d := range t.order {
		v := t.vertices[d]
		if v.err != "" && !strings.Contains(v.err, "context canceled") {
			l := v.logs
			if v.partial != "" {
				l = append(append([]string(nil), l...), v.partial)
			}
			return v.name, v.err, l, true
		}
	}
	return "", "", nil, false
}
