// Package testenv gives tests the real components they need — buildkitd and
// runc, a base image, an OCI registry — and checks that nothing leaks.
//
// A test that needs root, runc or buildkitd fails when LIAN_E2E=1 (CI) and
// they are missing; on a developer machine it skips, loudly.
package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/sizing"
)

func init() {
	// distribution and containerd's content store log through logrus.
	logrus.SetLevel(logrus.ErrorLevel)
}

// E2E reports whether missing prerequisites must fail tests (CI sets LIAN_E2E=1).
func E2E() bool { return os.Getenv("LIAN_E2E") == "1" }

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Buildkitd finds the buildkitd binary: $LIAN_BUILDKITD, bin/buildkitd of the repo, or PATH.
func Buildkitd() (string, error) {
	if p := os.Getenv("LIAN_BUILDKITD"); p != "" {
		return p, nil
	}
	if p := filepath.Join(RepoRoot(), "bin", "buildkitd"); fileExists(p) {
		return p, nil
	}
	return exec.LookPath("buildkitd")
}

// Require checks root, runc and buildkitd; it fails the test in CI and skips it elsewhere.
func Require(t testing.TB) string {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		missing = append(missing, "runc (apt-get install runc)")
	}
	bk, err := Buildkitd()
	if err != nil {
		missing = append(missing, "buildkitd (make tools)")
	}
	if _, err := exec.LookPath("busybox"); err != nil {
		missing = append(missing, "busybox (apt-get install busybox-static)")
	}
	if len(missing) > 0 {
		missingPrereq(t, strings.Join(missing, ", "))
	}
	return bk
}

// RequireTools checks programs on PATH; it fails the test in CI and skips
// it elsewhere, naming those missing.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		missingPrereq(t, strings.Join(missing, ", "))
	}
}

// missingPrereq fails the test under LIAN_E2E=1 and skips it, loudly, otherwise.
func missingPrereq(t testing.TB, what string) {
	t.Helper()
	msg := "real-component test needs: " + what
	if E2E() {
		t.Fatal(msg + " (LIAN_E2E=1: missing prerequisites fail)")
	}
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: %s ***\n\n", t.Name(), msg)
	t.Skip(msg)
}

// ProviderOptions returns local provider options for a test: its own state dir
// and the given tier memory.
func ProviderOptions(t testing.TB, tierMemory map[string]int64, insecure ...string) local.Options {
	t.Helper()
	bk := Require(t)
	return local.Options{
		Buildkitd:          bk,
		StateDir:           filepath.Join(t.TempDir(), "runners"),
		TierMemory:         tierMemory,
		InsecureRegistries: insecure,
		Table:              sizing.HCloud,
	}
}

// NewProvider is a local provider for a test.
func NewProvider(t testing.TB, tierMemory map[string]int64, insecure ...string) *local.Provider {
	t.Helper()
	p, err := local.New(ProviderOptions(t, tierMemory, insecure...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// HostOptions are the local provider settings behind the fake Hetzner API's
// runner hosts: buildkitd shares its lease's cgroup with the RUN steps, as
// on a VM of the tier's size.
func HostOptions(t testing.TB, tierMemory map[string]int64) local.Options {
	t.Helper()
	opts := ProviderOptions(t, tierMemory)
	opts.DaemonInCgroup = true
	return opts
}

var (
	rootfsOnce sync.Once
	rootfsDir  string
	rootfsErr  error
)

// Rootfs is a busybox root filesystem (Debian's busybox-static), made once.
func Rootfs(t testing.TB) string {
	t.Helper()
	Require(t)
	rootfsOnce.Do(func() { rootfsDir, rootfsErr = makeRootfs() })
	if rootfsErr != nil {
		t.Fatal(rootfsErr)
	}
	return rootfsDir
}

func makeRootfs() (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "lian-build-test", "rootfs-"+hex.EncodeToString(sum[:6]))
	if fileExists(filepath.Join(dir, ".done")) {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir)+"/", "rootfs-tmp-")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return "", err
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(dir), "rootfs-tmp-"); err != nil {
			return "", err
		}
	}
	if err := MakeBusyboxRootfs(bb, tmp); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".done"), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil && !fileExists(filepath.Join(dir, ".done")) {
		return "", err
	}
	os.RemoveAll(tmp)
	return dir, nil
}

// MakeBusyboxRootfs lays out bin/busybox, its applet links, /tmp and /etc in dir.
func MakeBusyboxRootfs(busybox, dir string) error {
	for _, d := range []string{"bin", "tmp", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	if err := copyFile(busybox, filepath.Join(dir, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

var (
	baseOnce sync.Once
	baseDir  string
	baseErr  error
)

// BaseLayout is an OCI layout holding a busybox base image, built once per
// test binary with the local provider itself.
func BaseLayout(t testing.TB) string {
	t.Helper()
	rootfs := Rootfs(t)
	baseOnce.Do(func() { baseDir, baseErr = makeBaseLayout(t, rootfs) })
	if baseErr != nil {
		t.Fatal(baseErr)
	}
	return baseDir
}

func makeBaseLayout(t testing.TB, rootfs string) (string, error) {
	dir := filepath.Join(filepath.Dir(rootfs), "base-"+filepath.Base(rootfs))
	df := "FROM scratch\nCOPY --from=rootfs / /\nENV PATH=/bin\nCMD [\"sh\"]\n"
	return buildLayout(t, dir, df, nil, []buildkit.NamedContext{{Name: "rootfs", Dir: rootfs}})
}

// buildLayout builds a Dockerfile with no context of its own into the OCI
// layout dir on a local runner, once: a layout already there is kept (the
// first test binary to finish makes it).
func buildLayout(t testing.TB, dir, dockerfile string, platforms []string, named []buildkit.NamedContext) (string, error) {
	if fileExists(filepath.Join(dir, "index.json")) {
		return dir, nil
	}
	ctxDir, err := os.MkdirTemp("", "lian-base-ctx-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(ctxDir)
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return "", err
	}
	p, err := local.New(local.Options{Buildkitd: Require(t), StateDir: filepath.Join(os.TempDir(), "lian-base-runners")})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := p.Spawn(ctx, sizing.HCloud[0], leaseFor("base-"+filepath.Base(dir)))
	if err != nil {
		return "", err
	}
	defer r.Destroy(context.Background())
	c, err := r.Client(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	tmp := fmt.Sprintf("%s.tmp-%d", dir, os.Getpid())
	defer os.RemoveAll(tmp)
	_, err = buildkit.Build(ctx, c, buildkit.Options{
		ContextDir: ctxDir, Platforms: platforms, NamedContexts: named,
		Outputs:     []buildkit.Output{{Type: "oci", Dest: tmp, Attrs: map[string]string{"tar": "false", "name": "lian/busybox:test"}}},
		ProgressOut: io.Discard, Progress: "plain",
	})
	if err != nil {
		return "", fmt.Errorf("building the base image: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil && !fileExists(filepath.Join(dir, "index.json")) {
		return "", err // else another test binary made it first
	}
	return dir, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// SilentListener is a loopback address that accepts connections and never
// answers (a hung service); it and its connections close when the test ends.
func SilentListener(t testing.TB) string {
	addr, _ := SilentListenerAccepts(t)
	return addr
}

// SilentListenerAccepts is SilentListener that also says, once per
// connection, when it has accepted one (dropped if nobody is waiting).
func SilentListenerAccepts(t testing.TB) (string, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 16)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	return ln.Addr().String(), accepted
}

// LayoutDigest is the digest of the one manifest of an OCI layout (what
// `--opt context:NAME=oci-layout://NAME@DIGEST` names).
func LayoutDigest(t testing.TB, layout string) string {
	t.Helper()
	var idx struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	raw, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err == nil {
		err = json.Unmarshal(raw, &idx)
	}
	if err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("OCI layout %s: %v (%d manifests)", layout, err, len(idx.Manifests))
	}
	return idx.Manifests[0].Digest
}
