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
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// A streamed context: the dockerfile frontend takes its context as an
// input (an llb.HTTP source unpacked), which buildkitd fetches as one
// plain HTTP response over a listener on its own machine that reaches this
// process. Across a WAN one stream runs at the link's pace, where the
// session's file sync — HTTP/2 nested in a gRPC stream — is bound by its
// flow-control windows and round trips (bench/README). The Dockerfile,
// secrets, SSH and outputs stay on the session.

// contextServer serves one build's context, once per request, as a tar.
type contextServer struct {
	URL  string
	Addr string // HOST:PORT of URL, where the daemon connects
	srv  *http.Server
	done chan struct{}

	mu        sync.Mutex
	requests  int
	sent, tar int64
	err       error // the tar could not be written (a file unreadable here)
}

// serveContext serves dir, less excludes, on ln until stop; zstd-
// compressed when compress.
func serveContext(ln net.Listener, dir string, excludes []string, compress bool) (*contextServer, error) {
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	path := "/" + hex.EncodeToString(token) + "/context.tar"
	addr := ln.Addr().String()
	s := &contextServer{URL: "http://" + addr + path, Addr: addr, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-tar")
		wire := &countingWriter{w: w}
		tw := &countingWriter{w: wire}
		var zw *zstdIfItPays
		if compress {
			zw = &zstdIfItPays{wire: wire}
			tw.w = zw
		}
		err := writeContextTar(r.Context(), dir, excludes, tw)
		if zw != nil {
			err = errors.Join(err, zw.Close())
		}
		s.mu.Lock()
		s.sent += wire.n
		s.tar += tw.n
		if err != nil && r.Context().Err() == nil {
			s.err = err
		}
		s.mu.Unlock()
		if err != nil {
			panic(http.ErrAbortHandler) // the daemon sees a broken download, not a short tar
		}
	})
	s.srv = &http.Server{Handler: mux}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
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

// writeContextTar writes dir as the session's file sync would send it:
// less the .dockerignore's patterns, owned by root, with the files'
// modes, times (to the nanosecond, PAX), symbolic links and xattrs.
func writeContextTar(ctx context.Context, dir string, excludes []string, w io.Writer) error {
	base, err := fsutil.NewFS(dir)
	if err != nil {
		return err
	}
	fs, err := fsutil.NewFilterFS(base, &fsutil.FilterOpt{
		ExcludePatterns: excludes,
		Map: func(_ string, st *fstypes.Stat) fsutil.MapResult {
			st.Uid, st.Gid = 0, 0
			return fsutil.MapResultKeep
		},
	})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	err = fs.Walk(ctx, "", func(p string, entry gofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return writeTarEntry(fs, tw, p, entry)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func writeTarEntry(fs fsutil.FS, tw *tar.Writer, p string, entry gofs.DirEntry) error {
	fi, err := entry.Info()
	if err != nil {
		return err
	}
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
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// StreamStep is the step that fetches a streamed context, as progress
// names it.
const StreamStep = "[internal] load build context (one stream)"

// streamedContext is the context input: the tar fetched from url and
// unpacked (the daemon checks nothing more; the tar is ours).
func streamedContext(url string) llb.State {
	tarball := llb.HTTP(url, llb.Filename("context.tar"), llb.WithCustomName(StreamStep))
	return llb.Scratch().File(
		llb.Copy(tarball, "/context.tar", "/", &llb.CopyInfo{AttemptUnpack: true}),
		llb.WithCustomName("[internal] unpack build context"))
}

// streamContext points so's context at a tar served over a listener
// o.ContextStream opens; the session keeps the rest. When the runner gives
// no listener the context goes through the session, and the note says why.
func streamContext(ctx context.Context, o Options, excludes []string, so *client.SolveOpt) (*contextServer, *ContextStream, error) {
	ln, err := o.ContextStream(ctx)
	if err != nil {
		return nil, &ContextStream{Note: "the context went through the session: " + oneLine(err)}, nil
	}
	s, err := serveContext(ln, o.ContextDir, excludes, o.ContextZstd)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	delete(so.LocalMounts, "context")
	if so.FrontendInputs == nil {
		so.FrontendInputs = map[string]llb.State{}
	}
	so.FrontendInputs["context"] = streamedContext(s.URL)
	return s, &ContextStream{}, nil
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
