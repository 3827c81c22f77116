package sshx_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/lian-build/action/internal/buildkit"
)

// BenchmarkTransport builds the same context (a ~200 MB file COPY'd, no
// cache) on one runner, through its unix socket and through SSH
// (direct-streamlocal), alternating, and reports both and their ratio.
// Target: SSH ≤ 1.10 × local.
//
//	go test -run '^$' -bench Transport -benchtime 3x ./internal/compute/sshx
func BenchmarkTransport(b *testing.B) {
	r, socket, conn := runnerOverSSH(b, "bench-transport")
	dir := b.TempDir()
	// Fresh content before every build: the daemon keeps what a previous
	// build sent of a context, and each build must send all of it.
	fresh := func() {
		b.StopTimer()
		defer b.StartTimer()
		f, err := os.Create(filepath.Join(dir, "blob"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if _, err := io.CopyN(f, rand.Reader, 200<<20); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY blob /blob\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	build := func(c *client.Client) time.Duration {
		fresh()
		start := time.Now()
		if _, err := buildkit.Build(context.Background(), c, buildkit.Options{ContextDir: dir, NoCache: true, Progress: "quiet"}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var local, overSSH time.Duration
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
		if i%2 == 0 {
			local += build(lc)
			overSSH += build(sc)
		} else {
			overSSH += build(sc)
			local += build(lc)
		}
		lc.Close()
		sc.Close()
	}
	b.ReportMetric(local.Seconds()/float64(b.N), "s/local-build")
	b.ReportMetric(overSSH.Seconds()/float64(b.N), "s/ssh-build")
	b.ReportMetric(overSSH.Seconds()/local.Seconds(), "ssh/local")
}
