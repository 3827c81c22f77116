package buildkit

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	gofs "io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// A stream goes zstd when its first bytes shrink and plain when they do
// not, whether it is shorter than the sample or longer; either way the
// bytes are the stream's.
func TestZstdIfItPays(t *testing.T) {
	random := func(n int) []byte { b := make([]byte, n); _, _ = rand.Read(b); return b }
	source := func(n int) []byte {
		return []byte(strings.Repeat("func handler(w http.ResponseWriter, r *http.Request) {\n\treturn\n}\n", n/64+1))[:n]
	}
	for _, tc := range []struct {
		name     string
		data     []byte
		wantZstd bool
	}{
		{"source shorter than the sample", source(300 << 10), true},
		{"source longer than the sample", source(zstdSample*2 + 12345), true},
		{"random shorter than the sample", random(300 << 10), false},
		{"random longer than the sample", random(zstdSample*2 + 12345), false},
		{"source, then random", append(source(zstdSample), random(zstdSample)...), true},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wire bytes.Buffer
			z := &zstdIfItPays{wire: &wire}
			for rest := tc.data; len(rest) > 0; {
				n := min(len(rest), 32<<10+7)
				if _, err := z.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
			isZstd := bytes.HasPrefix(wire.Bytes(), []byte{0x28, 0xb5, 0x2f, 0xfd})
			if isZstd != tc.wantZstd {
				t.Fatalf("zstd: %v, want %v (%d bytes for %d)", isZstd, tc.wantZstd, wire.Len(), len(tc.data))
			}
			got := wire.Bytes()
			if isZstd {
				r, err := zstd.NewReader(&wire)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				if got, err = io.ReadAll(r); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("the wire carried %d bytes that are not the stream's %d", len(got), len(tc.data))
			}
		})
	}
}

type fakeInfo struct {
	name string
	size int64
	mode gofs.FileMode
}

func (f fakeInfo) Name() string        { return path.Base(f.name) }
func (f fakeInfo) Size() int64         { return f.size }
func (f fakeInfo) Mode() gofs.FileMode { return f.mode }
func (f fakeInfo) ModTime() time.Time  { return time.Time{} }
func (f fakeInfo) IsDir() bool         { return f.mode.IsDir() }
func (f fakeInfo) Sys() any            { return nil }
func entry(p string, size int64, mode gofs.FileMode) planEntry {
	return planEntry{path: p, info: fakeInfo{p, size, mode}}
}

// A context is split into as many parts as its files fill (at most
// maxParts, never more than it has entries that are not directories);
// every directory is in every part, every other entry in exactly one, in
// the walk's order, and the parts' bytes are even to within the largest
// file.
func TestSplitContext(t *testing.T) {
	const mb = 1 << 20
	tree := func(files int, size int64) []planEntry {
		var es []planEntry
		for d := 0; d < files/100; d++ {
			es = append(es, entry(fmt.Sprintf("d%02d", d), 0, gofs.ModeDir|0o755))
			for f := 0; f < 100; f++ {
				es = append(es, entry(fmt.Sprintf("d%02d/f%03d", d, f), size, 0o644))
			}
		}
		return es
	}
	oneBig := append(tree(300, 10<<10), entry("big.tar", 40*mb, 0o644), entry("link", 7, gofs.ModeSymlink|0o777))
	for _, tc := range []struct {
		name    string
		entries []planEntry
		parts   int
		largest int64 // the largest file, which bounds the imbalance
	}{
		{"empty", nil, 1, 0},
		{"one 50 MB file", []planEntry{entry("blob", 50*mb, 0o644)}, 1, 50 * mb},
		{"a few small files", tree(100, 1<<10), 1, 1 << 10},
		{"2,000 files of 100 KB", tree(2000, 100<<10), 8, 100 << 10},
		{"2,000 files of 10 KB", tree(2000, 10<<10), 3, 10 << 10},
		{"one 40 MB file among small ones", oneBig, 6, 40 * mb},
		{"two files of 50 MB", []planEntry{entry("a", 50*mb, 0o644), entry("b", 50*mb, 0o644)}, 2, 50 * mb},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts := splitContext(tc.entries, 8*mb, maxParts)
			if len(parts) != tc.parts {
				t.Fatalf("%d parts, want %d", len(parts), tc.parts)
			}
			seen := map[string]int{}
			var loads []int64
			for _, part := range parts {
				var load int64
				last := -1
				for _, e := range part {
					i := slices.IndexFunc(tc.entries, func(x planEntry) bool { return x.path == e.path })
					if i <= last {
						t.Fatalf("%s is out of the walk's order", e.path)
					}
					last = i
					seen[e.path]++
					load += regularSize(e.info)
				}
				loads = append(loads, load)
			}
			for _, e := range tc.entries {
				want := 1
				if e.info.IsDir() {
					want = len(parts)
				}
				if seen[e.path] != want {
					t.Errorf("%s is in %d parts, want %d", e.path, seen[e.path], want)
				}
			}
			if lo, hi := slices.Min(loads), slices.Max(loads); hi-lo > tc.largest {
				t.Errorf("parts of %v bytes: uneven by more than the largest file (%d)", loads, tc.largest)
			}
		})
	}
}

// A context's parts go a few at a time: while that many responses are being
// sent (their bodies unread, larger than the sockets' small buffers), the
// other requests wait, unanswered; when one ends, the next is answered.
// Each part is a tar of its own files.
func TestPartsGoAFewAtATime(t *testing.T) {
	dir := t.TempDir()
	file := make([]byte, 4<<20)
	files := streamsAtOnce + 2
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), file, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	SplitContextsAt(t, 1)
	plan, err := planContext(t.Context(), dir, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := serveContext(smallBuffers{ln}, plan, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	if len(s.URLs) != files {
		t.Fatalf("%d parts, want one per file", len(s.URLs))
	}
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10) })
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	answered := make(chan *http.Response, len(s.URLs))
	for _, url := range s.URLs {
		go func() {
			resp, err := hc.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			answered <- resp
		}()
	}
	next := func() *http.Response {
		select {
		case resp := <-answered:
			return resp
		case <-time.After(30 * time.Second):
			t.Fatal("no part was answered")
			return nil
		}
	}
	var sending []*http.Response
	for range streamsAtOnce {
		sending = append(sending, next())
	}
	select {
	case resp := <-answered:
		t.Fatalf("%s was answered while %d parts were being sent", resp.Request.URL.Path, streamsAtOnce)
	case <-time.After(500 * time.Millisecond):
	}
	got := map[string]bool{}
	readPart := func(resp *http.Response) {
		defer resp.Body.Close()
		tr := tar.NewReader(resp.Body)
		n := 0
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got[hdr.Name] = true
			n++
		}
		if n != 1 {
			t.Errorf("%s holds %d files, want 1", resp.Request.URL.Path, n)
		}
	}
	readPart(sending[0])
	for _, resp := range append(sending[1:], next()) {
		readPart(resp)
	}
	readPart(next())
	if len(got) != files {
		t.Errorf("the parts held %v, want the %d files", got, files)
	}
}

// smallBuffers gives each accepted connection a small send buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(64 << 10)
	}
	return c, err
}

// A file that grows or shrinks between the context's listing and its
// sending fails the part with the file named, instead of a tar whose
// next header carries the blame.
func TestFileChangedWhileSent(t *testing.T) {
	for name, change := range map[string]func(string) error{
		"grew":   func(p string) error { return os.WriteFile(p, []byte("0123456789 and more"), 0o644) },
		"shrank": func(p string) error { return os.Truncate(p, 3) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"a.txt", "b.txt"} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("0123456789"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			plan, err := planContext(t.Context(), dir, nil, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := change(filepath.Join(dir, "a.txt")); err != nil {
				t.Fatal(err)
			}
			err = plan.writeTar(t.Context(), 0, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "a.txt: changed while the context was sent") {
				t.Errorf("err %v: want a.txt named as changed", err)
			}
		})
	}
}
