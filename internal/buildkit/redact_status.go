package buildkit

import (
	"bytes"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// statusRedactor masks secrets in the solve status stream itself, before the
// tracker, the display or an encoder sees it: `--progress rawjson` writes log
// data base64-encoded, where a text redactor on the output cannot find it.
// Log data is held back per vertex and stream until a newline, so that a
// secret split across two chunks is still found; what is held is released
// when the vertex completes or the stream ends.
type statusRedactor struct {
	r    *Redactor
	held map[logKey]*client.VertexLog
}

type logKey struct {
	vertex digest.Digest
	stream int
}

// maxHeld bounds the bytes held back for one stream without a newline.
const maxHeld = 64 << 10

func newStatusRedactor(r *Redactor) *statusRedactor {
	return &statusRedactor{r: r, held: map[logKey]*client.VertexLog{}}
}

func (sr *statusRedactor) active() bool { return len(sr.r.secrets) > 0 }

// redact returns a masked copy of s (s itself when there are no secrets).
func (sr *statusRedactor) redact(s *client.SolveStatus) *client.SolveStatus {
	if !sr.active() {
		return s
	}
	out := &client.SolveStatus{Statuses: s.Statuses}
	for _, v := range s.Vertexes {
		cp := *v
		cp.Name = sr.r.RedactString(v.Name)
		cp.Error = sr.r.RedactString(v.Error)
		out.Vertexes = append(out.Vertexes, &cp)
	}
	for _, l := range s.Logs {
		if emit := sr.hold(l); emit != nil {
			out.Logs = append(out.Logs, emit)
		}
	}
	for _, w := range s.Warnings {
		cp := *w
		cp.Short = sr.r.Redact(w.Short)
		cp.Detail = make([][]byte, len(w.Detail))
		for i, d := range w.Detail {
			cp.Detail[i] = sr.r.Redact(d)
		}
		out.Warnings = append(out.Warnings, &cp)
	}
	for _, v := range s.Vertexes {
		if v.Completed != nil {
			out.Logs = append(out.Logs, sr.release(v.Digest)...)
		}
	}
	return out
}

// hold appends a log chunk to its stream and returns the masked complete
// lines, or nil when everything is still held.
func (sr *statusRedactor) hold(l *client.VertexLog) *client.VertexLog {
	k := logKey{l.Vertex, l.Stream}
	h := sr.held[k]
	if h == nil {
		h = &client.VertexLog{Vertex: l.Vertex, Stream: l.Stream}
		sr.held[k] = h
	}
	h.Data = append(h.Data, l.Data...)
	h.Timestamp = l.Timestamp
	i := bytes.LastIndexAny(h.Data, "\n\r")
	if i < 0 && len(h.Data) < maxHeld {
		return nil
	}
	cut := i + 1
	if i < 0 {
		cut = len(h.Data)
	}
	emit := &client.VertexLog{Vertex: l.Vertex, Stream: l.Stream, Timestamp: l.Timestamp, Data: sr.r.Redact(append([]byte(nil), h.Data[:cut]...))}
	h.Data = append(h.Data[:0], h.Data[cut:]...)
	return emit
}

// release returns what is held for a vertex ("" = every vertex), masked.
func (sr *statusRedactor) release(vertex digest.Digest) []*client.VertexLog {
	var out []*client.VertexLog
	for k, h := range sr.held {
		if vertex != "" && k.vertex != vertex {
			continue
		}
		if len(h.Data) > 0 {
			out = append(out, &client.VertexLog{Vertex: h.Vertex, Stream: h.Stream, Timestamp: h.Timestamp, Data: sr.r.Redact(h.Data)})
		}
		delete(sr.held, k)
	}
	return out
}

// flush is the last status: every log still held.
func (sr *statusRedactor) flush() *client.SolveStatus {
	if !sr.active() {
		return nil
	}
	logs := sr.release("")
	if len(logs) == 0 {
		return nil
	}
	for _, l := range logs {
		if l.Timestamp.IsZero() {
			l.Timestamp = time.Now()
		}
	}
	return &client.SolveStatus{Logs: logs}
}
