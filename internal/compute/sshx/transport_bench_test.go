package sshx_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/link"
)

// BenchmarkTransport builds the same context (2,000 files, 200 MB of
// random bytes, COPY'd, no cache) on one runner: through its unix socket,
// through SSH (direct-streamlocal), and through SSH with the context as
// one stream and split into streams (remote forwards); each round in
// another order, and reports each against the socket: the whole build,
// and the context's upload (its steps, as buildkitd timed them). Target:
// the streamed build ≤ 1.2 × local.
//
//	go test -run '^$' -bench 'Transport$' -benchtime 3x ./internal/compute/sshx
func BenchmarkTransport(b *testing.B) {
	p, disk := diskProvider(b)
	r, socket, conn := runnerOverSSHOf(b, "bench-transport", p)
	dir := filepath.Join(disk, "context")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY . /ctx/\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	names := []string{"local", "ssh", "stream", "streams"}
	var builds, uploads [4]time.Duration // by way, in names' order
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lc, err := r.Client(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		sc, err := conn.BuildKit(context.Background(), socket)
		if err != nil {
			b.Fatal(err)
		}
		ways := withStreams([]way{{"local", lc, buildkit.Options{}}, {"ssh", sc, buildkit.Options{}}}, sc, conn)
		buildEachWay(b, i, dir, ways, builds[:], uploads[:])
		lc.Close()
		sc.Close()
	}
	n := float64(b.N)
	b.ReportMetric(builds[0].Seconds()/n, "s/local-build")
	b.ReportMetric(uploads[0].Seconds()/n, "s/local-upload")
	for k, name := range names[1:] {
		b.ReportMetric(builds[k+1].Seconds()/builds[0].Seconds(), name+"/local")
		b.ReportMetric(uploads[k+1].Seconds()/uploads[0].Seconds(), name+"-upload/local")
	}
}

// BenchmarkTransportOverLink uploads a fresh context of 2,000 files, 200
// MB of random bytes, over each shaped link preset (toxiproxy in front of
// sshd, and of a plain TCP forward to buildkitd) and reports against the
// link's floor (bytes ÷ bandwidth + 2 round trips): the same bytes
// streamed raw through an SSH session; the build through the session over
// SSH, and over TCP without SSH; the build with its context as one stream,
// and split into streams (what remote runners do). "upload" is the
// context's own steps, from the first one's start to the last one's end
// (buildkitd's timestamps); the rest of a build is the same whichever way
// its context came.
//
//	go test -run '^$' -bench TransportOverLink -benchtime 1x ./internal/compute/sshx
func BenchmarkTransportOverLink(b *testing.B) {
	sshd, socket := linkRunner(b, "bench-link")
	const size = contextBytes
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY . /ctx/\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	tcp := unixOverTCP(b, socket)
	for _, lk := range link.Presets {
		b.Run(lk.Name, func(b *testing.B) {
			conn, err := sshx.Dial(context.Background(), sshx.Config{Addr: link.Shape(b, sshd.Addr, lk).Addr, Signer: sshd.Client, HostKey: sshd.HostKey})
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			plain := link.Shape(b, tcp, lk).Addr
			blob := make([]byte, size)
			if _, err := rand.Read(blob); err != nil {
				b.Fatal(err)
			}
			var raw time.Duration
			var builds, uploads [4]time.Duration // by way, in names' order
			names := []string{"ssh", "tcp", "stream", "streams"}
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := conn.RunInput(context.Background(), "cat > /dev/null", blob); err != nil {
					b.Fatal(err)
				}
				raw += time.Since(start)
				sc, err := conn.BuildKit(context.Background(), socket)
				if err != nil {
					b.Fatal(err)
				}
				tc, err := client.New(context.Background(), "tcp://"+plain)
				if err != nil {
					b.Fatal(err)
				}
				ways := withStreams([]way{{"ssh", sc, buildkit.Options{}}, {"tcp", tc, buildkit.Options{}}}, sc, conn)
				buildEachWay(b, i, dir, ways, builds[:], uploads[:])
				sc.Close()
				tc.Close()
			}
			n, floor := float64(b.N), lk.Floor(size, 2).Seconds()
			b.ReportMetric(floor, "s/floor")
			b.ReportMetric(raw.Seconds()/n/floor, "raw-ssh/floor")
			for k, name := range names {
				b.ReportMetric(builds[k].Seconds()/n/floor, name+"/floor")
				b.ReportMetric(uploads[k].Seconds()/n/floor, name+"-upload/floor")
			}
		})
	}
}

// way is one way a benchmark's build reaches the daemon.
type way struct {
	name string
	c    *client.Client
	o    buildkit.Options
}

// withStreams adds to ways the build through c with its context as one
// stream, and split into parts, over conn's remote forwards.
func withStreams(ways []way, c *client.Client, conn *sshx.Conn) []way {
	return append(ways,
		way{"stream", c, buildkit.Options{ContextStream: conn.ListenLoopback, ContextZstd: true, ContextParts: 1}},
		way{"streams", c, buildkit.Options{ContextStream: conn.ListenLoopback, ContextZstd: true}})
}

// The transport benchmarks' context: 2,000 files, 200 MB of random bytes.
const contextFiles, contextBytes = 2000, 200 << 20

// buildEachWay builds a fresh context (contextFiles) each way,
// round starting with its own way, and adds each way's times to builds
// and uploads.
func buildEachWay(b *testing.B, round int, dir string, ways []way, builds, uploads []time.Duration) {
	for j := range ways {
		k := (round + j) % len(ways)
		freshFiles(b, dir, contextFiles, contextBytes)
		build, upload := timedBuild(b, ways[k].c, dir, ways[k].o)
		builds[k] += build
		uploads[k] += upload
		b.Logf("round %d %s: build %v, upload %v", round, ways[k].name, build, upload)
	}
}

// freshFiles writes files files of size bytes in all, of random bytes,
// 100 to a directory: the daemon keeps what an earlier build sent, and
// each build must send all of it. Nothing is left dirty.
func freshFiles(b *testing.B, dir string, files int, size int64) {
	b.StopTimer()
	defer b.StartTimer()
	buf := make([]byte, size/int64(files))
	for i := 0; i < files; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%04d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := rand.Read(buf); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	syscall.Sync()
}

// timedBuild builds dir on c (no cache) and returns how long the build
// took and how long its context took to arrive: the steps that load,
// unpack and merge it, first start to last end, as buildkitd timed them.
func timedBuild(b *testing.B, c *client.Client, dir string, o buildkit.Options) (build, upload time.Duration) {
	var progress bytes.Buffer
	o.ContextDir, o.NoCache, o.Progress, o.ProgressOut = dir, true, "rawjson", &progress
	start := time.Now()
	if _, err := buildkit.Build(context.Background(), c, o); err != nil {
		b.Fatal(err)
	}
	build = time.Since(start)
	// A fresh runner holds no earlier build: the daemon drops what this
	// one left (without, every way slowed by a half from round to round,
	// as the loop disk's pages filled the page cache twice over).
	b.StopTimer()
	if err := c.Prune(context.Background(), nil, client.PruneAll); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	var first, last time.Time
	dec := json.NewDecoder(&progress)
	for {
		var st client.SolveStatus
		if err := dec.Decode(&st); err == io.EOF {
			break
		} else if err != nil {
			b.Fatal(err)
		}
		for _, v := range st.Vertexes {
			if !strings.HasPrefix(v.Name, "[internal] load build context") && !strings.HasPrefix(v.Name, "[internal] unpack build context") && !strings.HasPrefix(v.Name, "[internal] merge build context") {
				continue
			}
			if v.Started != nil && (first.IsZero() || v.Started.Before(first)) {
				first = *v.Started
			}
			if v.Completed != nil && v.Completed.After(last) {
				last = *v.Completed
			}
		}
	}
	if first.IsZero() || last.Before(first) {
		b.Fatalf("no context step in the progress of %s", dir)
	}
	return build, last.Sub(first)
}

// unixOverTCP forwards a loopback TCP port to buildkitd's unix socket: the
// same build without SSH, for comparison.
func unixOverTCP(b *testing.B, socket string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer in.Close()
				out, err := net.Dial("unix", socket)
				if err != nil {
					return
				}
				defer out.Close()
				var up sync.WaitGroup
				up.Go(func() { _, _ = io.Copy(out, in); _ = out.(*net.UnixConn).CloseWrite() })
				_, _ = io.Copy(in, out)
				in.Close()
				up.Wait()
			})
		}
	})
	return ln.Addr().String()
}

// freshBlob writes size random bytes: the daemon keeps what an earlier
// build sent, and each build must send all of it.
func freshBlob(b *testing.B, path string, size int64) {
	b.StopTimer()
	defer b.StartTimer()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkChangeAndOutputOverLink, over each shaped link through SSH: a
// 2,000-file context (20 MB) sent once, then a build after one file
// changed (only the change should cross: its time against the link's
// round trips), a 100 MB result exported back with --output type=local
// (against the link's floor for 100 MB), and the same result pushed from the
// runner to a registry (not over the link); the first build is also
// measured with its context streamed.
//
//	go test -run '^$' -bench ChangeAndOutputOverLink -benchtime 2x ./internal/compute/sshx
func BenchmarkChangeAndOutputOverLink(b *testing.B) {
	sshd, socket := linkRunner(b, "bench-change")
	reg := testenv.StartRegistry(b)
	for _, lk := range link.Presets {
		b.Run(lk.Name, func(b *testing.B) {
			conn, c := clientOverLink(b, sshd, socket, lk)
			var first, firstStream, change, output, push time.Duration
			for i := 0; i < b.N; i++ {
				dir := manyFiles(b, 2000, 10<<10)
				build := func(o buildkit.Options) time.Duration {
					o.ContextDir, o.Progress = dir, "quiet"
					start := time.Now()
					if _, err := buildkit.Build(context.Background(), c, o); err != nil {
						b.Fatal(err)
					}
					return time.Since(start)
				}
				firstStream += build(buildkit.Options{ContextStream: conn.ListenLoopback, NoCache: true})
				first += build(buildkit.Options{})
				freshBlob(b, filepath.Join(dir, "src", "f0007"), 10<<10)
				change += build(buildkit.Options{})
				b.StopTimer()
				if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY big /big\n"), 0o644); err != nil {
					b.Fatal(err)
				}
				freshBlob(b, filepath.Join(dir, "big"), resultBytes)
				_ = build(buildkit.Options{}) // the result's bytes up, once
				out := b.TempDir()
				b.StartTimer()
				output += build(buildkit.Options{Outputs: []buildkit.Output{{Type: "local", Dest: out, Attrs: map[string]string{}}}})
				// The result pushed from the runner to a registry it reaches
				// itself: only the session's round trips cross the link.
				push += build(buildkit.Options{NoCache: true, Push: true, InsecureRegistries: []string{reg.Host},
					Tags: []string{fmt.Sprintf("%s/bench/%s:%d", reg.Host, lk.Name, i)}})
			}
			n := float64(b.N)
			b.ReportMetric(first.Seconds()/n, "s/first-20MB")
			b.ReportMetric(firstStream.Seconds()/n, "s/first-20MB-stream")
			b.ReportMetric(firstStream.Seconds()/n/lk.Floor(2000*10<<10, 2).Seconds(), "first-stream/floor")
			b.ReportMetric(change.Seconds()/n, "s/one-file-changed")
			b.ReportMetric(change.Seconds()/n/lk.RTT.Seconds(), "changed/RTT")
			b.ReportMetric(output.Seconds()/n, "s/output-100MB")
			b.ReportMetric(output.Seconds()/n/lk.Floor(resultBytes, 2).Seconds(), "output/floor")
			b.ReportMetric(push.Seconds()/n, "s/push-100MB")
		})
	}
}

// resultBytes is the size of BenchmarkChangeAndOutputOverLink's result.
const resultBytes = 100 << 20

// manyFiles is a fresh context of n random files of size bytes under src/,
// copied whole by its Dockerfile.
func manyFiles(b *testing.B, n int, size int64) string {
	b.StopTimer()
	defer b.StartTimer()
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY src /src\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		f, err := os.Create(filepath.Join(dir, "src", fmt.Sprintf("f%04d", i)))
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.CopyN(f, rand.Reader, size)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// clientOverLink is an SSH connection through a shaped link to sshd and a
// BuildKit client over it; both close when the benchmark ends.
func clientOverLink(b *testing.B, sshd *testenv.SSHD, socket string, lk link.Preset) (*sshx.Conn, *client.Client) {
	conn, err := sshx.Dial(context.Background(), sshx.Config{Addr: link.Shape(b, sshd.Addr, lk).Addr, Signer: sshd.Client, HostKey: sshd.HostKey})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c, err := conn.BuildKit(context.Background(), socket)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return conn, c
}

// linkRunner is a real sshd and a local runner's buildkitd (its socket)
// for the link benchmarks; the runner goes when the benchmark ends.
func linkRunner(b *testing.B, lease string) (*testenv.SSHD, string) {
	testenv.Require(b)
	p, _ := diskProvider(b) // before sshd, which sees the mounts made before it starts
	sshd := testenv.StartSSHD(b)
	r, err := p.Spawn(context.Background(), sizing.HCloud[0], compute.Lease{ID: lease, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Destroy(context.Background()) })
	return sshd, strings.TrimPrefix(r.Info().Address, "unix://")
}

// BenchmarkSourceTreeOverLink sends a real source tree — this
// repository's internal/ and cmd/ (~320 Go files, 2.3 MB of tar,
// compressible as source is) — over each shaped link: through the session, as one stream,
// and as one zstd stream; each a fresh daemon-side copy (no cache).
//
//	go test -run '^$' -bench SourceTreeOverLink -benchtime 2x ./internal/compute/sshx
func BenchmarkSourceTreeOverLink(b *testing.B) {
	sshd, socket := linkRunner(b, "bench-tree")
	dir := sourceTree(b)
	for _, lk := range link.Presets {
		b.Run(lk.Name, func(b *testing.B) {
			conn, c := clientOverLink(b, sshd, socket, lk)
			var times [3]time.Duration
			var tarBytes, wire int64
			for i := 0; i < b.N; i++ {
				for k, o := range []buildkit.Options{{}, {ContextStream: conn.ListenLoopback}, {ContextStream: conn.ListenLoopback, ContextZstd: true}} {
					b.StopTimer()
					touchAll(b, dir) // the session's shared-key copy must not help it
					b.StartTimer()
					o.ContextDir, o.Progress, o.NoCache = dir, "quiet", true
					start := time.Now()
					rep, err := buildkit.Build(context.Background(), c, o)
					if err != nil {
						b.Fatal(err)
					}
					times[k] += time.Since(start)
					if cs := rep.ContextStream; cs != nil && o.ContextZstd {
						tarBytes, wire = cs.TarBytes, cs.Bytes
					}
				}
			}
			n := float64(b.N)
			b.ReportMetric(times[0].Seconds()/n, "s/session")
			b.ReportMetric(times[1].Seconds()/n, "s/stream")
			b.ReportMetric(times[2].Seconds()/n, "s/stream-zstd")
			b.ReportMetric(float64(tarBytes)/1e6, "MB-tar")
			b.ReportMetric(float64(wire)/1e6, "MB-zstd")
		})
	}
}

// sourceTree copies this repository's internal/ and cmd/ Go sources into a
// context whose Dockerfile copies them.
func sourceTree(b *testing.B) string {
	dir := b.TempDir()
	root := testenv.RepoRoot()
	for _, top := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Join(dir, "src", filepath.Dir(rel)), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "src", rel), data, 0o644)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY src /src\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// touchAll gives every file a new mtime: the daemon's copy of the last
// context no longer matches, and the session sends every file again.
func touchAll(b *testing.B, dir string) {
	now := time.Now()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, now, now)
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSmallBuild is the fixed cost of a transport on a build that
// does almost nothing (one small file changed, copied): the same runner
// through its unix socket, through SSH to its socket (direct-streamlocal),
// through SSH and a `buildctl dial-stdio` command (a pool lease's key),
// and through SSH with the context streamed; each with the client kept and
// with a client dialled for the build (what a build pays: the dial, the
// handshake, Info, the solve). Medians of b.N, order rotated each round.
//
//	go test -run '^$' -bench SmallBuild -benchtime 20x ./internal/compute/sshx
func BenchmarkSmallBuild(b *testing.B) {
	r, socket, conn := runnerOverSSH(b, "bench-small")
	buildctl, err := exec.LookPath("buildctl")
	if err != nil {
		b.Fatal(err)
	}
	dialStdio := buildctl + " --addr unix://" + socket + " dial-stdio"
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY small /small\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	type path struct {
		name   string
		dial   func(context.Context) (*client.Client, error)
		stream func(context.Context) (net.Listener, error)
	}
	paths := []path{
		{"socket", r.Client, nil},
		{"ssh-unix", func(ctx context.Context) (*client.Client, error) { return conn.BuildKit(ctx, socket) }, nil},
		{"ssh-dial-stdio", func(ctx context.Context) (*client.Client, error) { return conn.BuildKitCommand(ctx, dialStdio) }, nil},
		{"ssh-unix-stream", func(ctx context.Context) (*client.Client, error) { return conn.BuildKit(ctx, socket) }, conn.ListenLoopback},
	}
	kept := make([]*client.Client, len(paths))
	for i, p := range paths {
		c, err := p.dial(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		kept[i] = c
	}
	solve := func(c *client.Client, p path, round int) {
		b.StopTimer()
		if err := os.WriteFile(filepath.Join(dir, "small"), []byte(fmt.Sprintf("%s %d\n", p.name, round)), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := buildkit.Build(context.Background(), c, buildkit.Options{ContextDir: dir, Progress: "quiet", ContextStream: p.stream}); err != nil {
			b.Fatal(err)
		}
	}
	warm, fresh := make([][]time.Duration, len(paths)), make([][]time.Duration, len(paths))
	for i := 0; i < b.N+1; i++ {
		for k := range paths {
			j := (i + k) % len(paths)
			p := paths[j]
			start := time.Now()
			solve(kept[j], p, 2*i)
			d := time.Since(start)
			start = time.Now()
			c, err := p.dial(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Info(context.Background()); err != nil {
				b.Fatal(err)
			}
			solve(c, p, 2*i+1)
			c.Close()
			if i > 0 { // the first round warms every path
				warm[j], fresh[j] = append(warm[j], d), append(fresh[j], time.Since(start))
			}
		}
	}
	for j, p := range paths {
		b.ReportMetric(float64(medianOf(warm[j]).Microseconds())/1000, "ms/"+p.name)
		b.ReportMetric(float64(medianOf(fresh[j]).Microseconds())/1000, "ms/"+p.name+"-dialled")
	}
}

func medianOf(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// diskProvider is a local provider whose runners keep their state on a
// journaled ext4 disk of their own, as a runner VM's buildkitd does, and
// that disk's mountpoint (testenv.Disk says why not this machine's root).
func diskProvider(b *testing.B) (*local.Provider, string) {
	b.Helper()
	disk := testenv.Disk(b, "ext4", 32<<30)
	opts := testenv.ProviderOptions(b, nil)
	opts.StateDir = filepath.Join(disk, "runners")
	p, err := local.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	return p, disk
}
