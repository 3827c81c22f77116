package buildkit

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	gofs "io/fs"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// A streamed context: the dockerfile frontend takes its context as an
// input (llb.HTTP sources unpacked and merged), which buildkitd fetches as
// plain HTTP responses over a listener on its own machine that reaches this
// process. Across a WAN a stream runs at the link's pace, where the
// session's file sync — HTTP/2 nested in a gRPC stream — is bound by its
// flow-control windows and round trips (bench/README). The Dockerfile,
// secrets, SSH and outputs stay on the session.
//
// A context of more than one part's worth of files goes as several
// streams, the files spread over the parts by size, each part a response
// of its own and so a connection and an SSH channel of its own. OpenSSH
// gives a channel a 2 MB window, which caps one stream at 2 MB per round
// trip (160 Mbit/s at 100 ms): a few streams at once fill a long link.
// Parts go a few at a time, so that buildkitd unpacks the first while
// later ones are still on the way. More parts cost more than they save
// (a fetch, an unpack and a merge input each): with 16, three at a time,
// a 2,000-file context built 1.2× slower on loopback than in one stream,
// with 8, four at a time, 1.08× (bench/README).
var partBytes int64 = 8 << 20 // a part's worth of files

const (
	maxParts      = 8 // unless Options.ContextParts says otherwise
	streamsAtOnce = 4
)

// contextServer serves one build's context, each part once per request,
// as a tar.
type contextServer struct {
	URLs  []string
	Addr  string // HOST:PORT of the URLs, where the daemon connects
	srv   *http.Server
	done  chan struct{}
	slots chan struct{} // a part is sent while it holds one

	mu        sync.Mutex
	requests  int
	sent, tar int64
	err       error // a tar could not be written (a file unreadable here)
}

// serveContext serves plan's parts on ln until stop; zstd-compressed
// when compress and they shrink.
func serveContext(ln net.Listener, plan *contextPlan, compress bool) (*contextServer, error) {
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	s := &contextServer{Addr: addr, done: make(chan struct{}), slots: make(chan struct{}, streamsAtOnce)}
	mux := http.NewServeMux()
	for k := range plan.parts {
		name := "context.tar"
		if len(plan.parts) > 1 {
			name = fmt.Sprintf("context-%d.tar", k+1)
		}
		path := "/" + hex.EncodeToString(token) + "/" + name
		s.URLs = append(s.URLs, "http://"+addr+path)
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, plan, k, compress) })
	}
	s.srv = &http.Server{Handler: mux}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// serve writes part k of plan as the response, once a slot is free.
func (s *contextServer) serve(w http.ResponseWriter, r *http.Request, plan *contextPlan, k int, compress bool) {
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-r.Context().Done():
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("Content-Type", "application/x-tar")
	wire := &countingWriter{w: w}
	tw := &countingWriter{w: wire}
	var zw *zstdIfItPays
	if compress {
		zw = &zstdIfItPays{wire: wire}
		tw.w = zw
	}
	err := plan.writeTar(r.Context(), k, tw)
	if zw != nil {
		err = errors.Join(err, zw.Close())
	}
	s.mu.Lock()
	s.sent += wire.n
	s.tar += tw.n
	if err != nil && r.Context().Err() == nil && s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	if err != nil {
		panic(http.ErrAbortHandler) // the daemon sees a broken download, not a short tar
	}
}

// stop closes the listener and every response, and says what went wrong
// on this side.
func (s *contextServer) stop() error {
	_ = s.srv.Close()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Sent is how many bytes went out, and how many of tar they carried.
func (s *contextServer) Sent() (wire, tar int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, s.tar
}

// unreached says whether err is the daemon failing to connect to the
// forward: no request arrived, and its error names the forward's address.
func (s *contextServer) unreached(err error) bool {
	s.mu.Lock()
	n := s.requests
	s.mu.Unlock()
	msg := err.Error()
	return n == 0 && strings.Contains(msg, "dial tcp "+s.Addr) && strings.Contains(msg, "connection refused")
}

// zstdIfItPays compresses the stream with zstd when its first bytes
// shrink: they are held back (zstdSample) and tried, and the stream goes
// plain when they shrink by less than a tenth (a context of compressed
// archives, images, binaries). zstd's fastest level costs little CPU here,
// but the daemon's unpack of 200 MB of random bytes took 0.25–0.4 s more
// compressed than plain (0.1 s): on a fast link that was 1.6–2.0× a unix
// socket against 0.9–1.1× plain (bench/README). A source tree shrinks 4×.
type zstdIfItPays struct {
	wire io.Writer
	held []byte
	w    io.Writer // the choice, once made: wire or zw
	zw   *zstd.Encoder
}

// zstdSample is how much of the stream decides.
const zstdSample = 4 << 20

func (z *zstdIfItPays) Write(p []byte) (int, error) {
	if z.w != nil {
		return z.w.Write(p)
	}
	z.held = append(z.held, p...)
	if len(z.held) >= zstdSample {
		if err := z.decide(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// decide tries the held bytes, picks the way and sends them.
func (z *zstdIfItPays) decide() error {
	z.w = z.wire
	if shrinks(z.held) {
		z.zw, _ = zstd.NewWriter(z.wire, zstd.WithEncoderLevel(zstd.SpeedFastest)) // no error for valid options
		z.w = z.zw
	}
	_, err := z.w.Write(z.held)
	z.held = nil
	return err
}

// shrinks says whether zstd's fastest level takes a tenth or more off b.
func shrinks(b []byte) bool {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	defer enc.Close()
	return len(enc.EncodeAll(b, nil)) < len(b)-len(b)/10
}

// Close sends what is held, if the stream was shorter than the sample,
// and ends the zstd frame.
func (z *zstdIfItPays) Close() error {
	if z.w == nil {
		if err := z.decide(); err != nil {
			return err
		}
	}
	if z.zw != nil {
		return z.zw.Close()
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// contextPlan is a context as the session's file sync would send it —
// less the .dockerignore's patterns, owned by root, with the files' modes,
// times (to the nanosecond, PAX), symbolic links and xattrs — split into
// parts: every part holds every directory, so that each unpack leaves
// their times as they are here, and each other entry is in one part.
type contextPlan struct {
	fs    fsutil.FS
	parts [][]planEntry // in walk order
}

type planEntry struct {
	path string
	info gofs.FileInfo
}

// planContext walks dir once and splits it into parts of about
// partBytes each, at most most (0: maxParts).
func planContext(ctx context.Context, dir string, excludes []string, most int) (*contextPlan, error) {
	if most <= 0 {
		most = maxParts
	}
	base, err := fsutil.NewFS(dir)
	if err != nil {
		return nil, err
	}
	fs, err := fsutil.NewFilterFS(base, &fsutil.FilterOpt{
		ExcludePatterns: excludes,
		Map: func(_ string, st *fstypes.Stat) fsutil.MapResult {
			st.Uid, st.Gid = 0, 0
			return fsutil.MapResultKeep
		},
	})
	if err != nil {
		return nil, err
	}
	var entries []planEntry
	err = fs.Walk(ctx, "", func(p string, entry gofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := entry.Info()
		if err != nil {
			return err
		}
		entries = append(entries, planEntry{path: p, info: fi})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &contextPlan{fs: fs, parts: splitContext(entries, partBytes, most)}, nil
}

// splitContext spreads entries over as many parts as their regular files
// fill at partBytes each (at least one, at most `most`, no more than there
// are entries other than directories), largest first into the part that
// holds least; each part keeps the walk's order, and every directory.
func splitContext(entries []planEntry, partBytes int64, most int) [][]planEntry {
	var total int64
	var order []int // entries other than directories, largest first
	for i, e := range entries {
		if !e.info.IsDir() {
			order = append(order, i)
			total += regularSize(e.info)
		}
	}
	n := int(min(int64(most), (total+partBytes-1)/partBytes, int64(len(order))))
	n = max(n, 1)
	sort.SliceStable(order, func(a, b int) bool {
		return regularSize(entries[order[a]].info) > regularSize(entries[order[b]].info)
	})
	part := make([]int, len(entries))
	load := make([]int64, n)
	for _, i := range order {
		k := 0
		for j := range load {
			if load[j] < load[k] {
				k = j
			}
		}
		part[i] = k
		load[k] += regularSize(entries[i].info)
	}
	parts := make([][]planEntry, n)
	for i, e := range entries {
		if e.info.IsDir() {
			for k := range parts {
				parts[k] = append(parts[k], e)
			}
			continue
		}
		parts[part[i]] = append(parts[part[i]], e)
	}
	return parts
}

func regularSize(fi gofs.FileInfo) int64 {
	if fi.Mode().IsRegular() {
		return fi.Size()
	}
	return 0
}

// writeTar writes part k as a tar.
func (p *contextPlan) writeTar(ctx context.Context, k int, w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, e := range p.parts[k] {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeTarEntry(p.fs, tw, e.path, e.info); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeTarEntry(fs fsutil.FS, tw *tar.Writer, p string, fi gofs.FileInfo) error {
	st, ok := fi.Sys().(*fstypes.Stat)
	if !ok {
		return fmt.Errorf("%s: no file status", p)
	}
	hdr, err := tar.FileInfoHeader(fi, st.Linkname)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	hdr.Format = tar.FormatPAX
	hdr.Name = filepath.ToSlash(p)
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = int(st.Uid), int(st.Gid), "", ""
	hdr.Devmajor, hdr.Devminor = st.Devmajor, st.Devminor
	for k, v := range st.Xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = string(v)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := fs.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(tw, io.LimitReader(f, hdr.Size+1))
	if errors.Is(err, tar.ErrWriteTooLong) || err == nil && n != hdr.Size {
		return fmt.Errorf("%s: changed while the context was sent (%d bytes when it was listed)", p, hdr.Size)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// StreamStep begins the name of each step that fetches a streamed
// context: "… (one stream)", or "… (stream 2 of 4)" for a part.
const StreamStep = "[internal] load build context ("

// streamedContext is the context input: the tars fetched from urls,
// each unpacked, and merged (the daemon checks nothing more; the tars are
// ours).
func streamedContext(urls []string) llb.State {
	parts := make([]llb.State, len(urls))
	for k, url := range urls {
		fetch, unpack := StreamStep+"one stream)", "[internal] unpack build context"
		if len(urls) > 1 {
			fetch = fmt.Sprintf("%sstream %d of %d)", StreamStep, k+1, len(urls))
			unpack = fmt.Sprintf("%s (stream %d of %d)", unpack, k+1, len(urls))
		}
		tarball := llb.HTTP(url, llb.Filename("context.tar"), llb.WithCustomName(fetch))
		parts[k] = llb.Scratch().File(
			llb.Copy(tarball, "/context.tar", "/", &llb.CopyInfo{AttemptUnpack: true}),
			llb.WithCustomName(unpack))
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return llb.Merge(parts, llb.WithCustomName("[internal] merge build context"))
}

// streamContext points so's context at tars served over a listener
// o.ContextStream opens; the session keeps the rest. When the runner gives
// no listener the context goes through the session, and the note says why.
func streamContext(ctx context.Context, o Options, excludes []string, so *client.SolveOpt) (*contextServer, *ContextStream, error) {
	ln, err := o.ContextStream(ctx)
	if err != nil {
		return nil, &ContextStream{Note: "the context went through the session: " + oneLine(err)}, nil
	}
	plan, err := planContext(ctx, o.ContextDir, excludes, o.ContextParts)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("reading the context %s: %w", o.ContextDir, err)
	}
	s, err := serveContext(ln, plan, o.ContextZstd)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	delete(so.LocalMounts, "context")
	if so.FrontendInputs == nil {
		so.FrontendInputs = map[string]llb.State{}
	}
	so.FrontendInputs["context"] = streamedContext(s.URLs)
	return s, &ContextStream{Parts: len(s.URLs)}, nil
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
