package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// GoLikeService is a stand-in for a Go service whose build cache lives in
// a cache mount: each of 40 source files is "compiled" (300 rounds of
// sha256) unless its result is in /gocache under the file's hash, as go
// build reuses its cache for unchanged packages. Its base is `base`.
func GoLikeService(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	df := `FROM base
COPY src /src
RUN --mount=type=cache,target=/gocache sh -c 'for f in /src/*.go; do k=$(sha256sum "$f" | cut -c1-64); if [ ! -e /gocache/$k ]; then h=$k; i=0; while [ $i -lt 300 ]; do h=$(echo $h | sha256sum | cut -c1-64); i=$((i+1)); done; echo $h > /gocache/$k; fi; cat /gocache/$k >> /app; done'
`
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		tb.Fatal(err)
	}
	for i := range 40 {
		TouchSource(tb, dir, i, "v0")
	}
	return dir
}

// TouchSource rewrites source file i of a GoLikeService as version.
func TouchSource(tb testing.TB, dir string, i int, version string) {
	tb.Helper()
	body := fmt.Sprintf("package p%d\n\n// %s\nfunc F() int { return %d }\n", i, version, i)
	if err := os.WriteFile(filepath.Join(dir, "src", fmt.Sprintf("f%02d.go", i)), []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// Persistent is one buildkitd kept running for every build (what a
// self-hosted buildx builder or Depot gives): the reference of the warm
// benchmarks.
type Persistent struct{ buildctl, sock, layout string }

// StartPersistent starts it, with the base layout as `base`; it stops when
// the test ends.
func StartPersistent(tb testing.TB, layout string) Persistent {
	tb.Helper()
	bk, err := Buildkitd()
	if err != nil {
		tb.Fatal(err)
	}
	state := tb.TempDir()
	p := Persistent{buildctl: filepath.Join(filepath.Dir(bk), "buildctl"), sock: "unix://" + filepath.Join(state, "buildkitd.sock"), layout: layout}
	d := exec.Command(bk, "--root", filepath.Join(state, "root"), "--addr", p.sock, "--oci-worker-snapshotter", "overlayfs", "--containerd-worker", "false")
	if err := d.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = d.Process.Signal(os.Interrupt); _ = d.Wait() })
	for start := time.Now(); exec.Command(p.buildctl, "--addr", p.sock, "debug", "workers").Run() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			tb.Fatal("buildkitd never answered")
		}
	}
	return p
}

// Build builds dir on it and returns how long it took.
func (p Persistent) Build(tb testing.TB, dir string) time.Duration {
	tb.Helper()
	start := time.Now()
	out, err := exec.Command(p.buildctl, "--addr", p.sock, "build", "--frontend", "dockerfile.v0", "--local", "context="+dir, "--local", "dockerfile="+dir,
		"--oci-layout", "base="+p.layout, "--opt", "context:base=oci-layout://base@"+LayoutDigest(tb, p.layout), "--progress", "quiet").CombinedOutput()
	if err != nil {
		tb.Fatalf("buildctl build: %v\n%s", err, out)
	}
	return time.Since(start)
}
