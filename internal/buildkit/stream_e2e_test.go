package buildkit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
)

// streamWorld is a local runner's buildkitd; its machine's loopback is
// this one, so a plain listener stands in for a remote forward.
func streamWorld(t *testing.T) func(buildkit.Options) (buildkit.Report, error) {
	testenv.Require(t)
	r, err := testenv.NewProvider(t, nil).Spawn(context.Background(), sizing.HCloud[0], compute.Lease{ID: "stream-" + fmt.Sprint(time.Now().UnixNano()%100000), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Destroy(context.Background()) })
	return func(o buildkit.Options) (buildkit.Report, error) {
		c, err := r.Client(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o.Progress = "plain"
		var out strings.Builder
		if o.ProgressOut != nil {
			o.ProgressOut = io.MultiWriter(&out, o.ProgressOut)
		} else {
			o.ProgressOut = &out
		}
		rep, err := buildkit.Build(context.Background(), c, o)
		if err != nil {
			t.Logf("progress:\n%s", out.String())
		}
		return rep, err
	}
}

func loopback(context.Context) (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// hostileTree is a context with what a file sync must carry faithfully:
// modes, an executable, a symbolic link (dangling too), an empty
// directory, a file owned by another user, a nanosecond mtime, a name
// with spaces, and what .dockerignore and Dockerfile.dockerignore leave out.
func hostileTree(t *testing.T) string {
	dir := t.TempDir()
	files := map[string]string{
		"Dockerfile":            "FROM scratch\nCOPY . /ctx/\n",
		".dockerignore":         "secret.env\n*.log\n!keep.log\nbuild/\n",
		"app/main.go":           "package main\n",
		"app/run.sh":            "#!/bin/sh\necho hi\n",
		"with space/a file.txt": "spaces\n",
		"secret.env":            "TOKEN=never-sent\n",
		"debug.log":             "noise\n",
		"keep.log":              "kept\n",
		"build/out.bin":         "artifact\n",
		"owned":                 "by 1234\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(filepath.Join(dir, "app/run.sh"), 0o755))
	must(os.Chmod(filepath.Join(dir, "with space/a file.txt"), 0o600))
	must(os.Symlink("../app/main.go", filepath.Join(dir, "with space/link")))
	must(os.Symlink("nowhere", filepath.Join(dir, "dangling")))
	must(os.MkdirAll(filepath.Join(dir, "empty"), 0o750))
	must(os.Chown(filepath.Join(dir, "owned"), 1234, 1234))
	mt := time.Date(2024, 2, 29, 12, 0, 0, 123456789, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "app/main.go"), mt, mt))
	return dir
}

// tree lists every entry under dir: path, mode, owner, contents, mtime
// (files' and directories'), link.
func tree(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += fmt.Sprintf(" %q %s", b, fi.ModTime().UTC().Format(time.RFC3339Nano))
		case fi.IsDir() && rel != ".":
			desc += " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A streamed context arrives as the session would have sent it: the same
// files, modes, owners (root), links, times to the nanosecond, and the
// same .dockerignore exclusions, whether in one stream or split into
// several (each part holds every directory); the report says how many
// bytes went, and in how many streams.
func TestStreamIsTheSession(t *testing.T) {
	build := streamWorld(t)
	dir := hostileTree(t)
	export := func(stream func(context.Context) (net.Listener, error), zstd bool) (map[string]string, buildkit.Report) {
		out := t.TempDir()
		rep, err := build(buildkit.Options{ContextDir: dir, NoCache: true, ContextStream: stream, ContextZstd: zstd,
			Outputs: []buildkit.Output{{Type: "local", Dest: out, Attrs: map[string]string{}}}})
		if err != nil {
			t.Fatal(err)
		}
		return tree(t, filepath.Join(out, "ctx")), rep
	}
	session, srep := export(nil, false)
	if srep.ContextStream != nil {
		t.Errorf("a session build reports a stream: %+v", srep.ContextStream)
	}
	streamed, rep := export(loopback, false)
	if cs := rep.ContextStream; cs == nil || cs.Bytes == 0 || cs.Note != "" || cs.Parts != 1 {
		t.Fatalf("the stream's report: %+v", rep.ContextStream)
	}
	compressed, zrep := export(loopback, true)
	if z := zrep.ContextStream; z == nil || z.TarBytes != rep.ContextStream.Bytes || z.Bytes >= z.TarBytes/4 {
		t.Errorf("zstd stream %+v, plain %+v: want the same tar in under a quarter of its bytes", z, rep.ContextStream)
	}
	buildkit.SplitContextsAt(t, 1)
	split, prep := export(loopback, false)
	if cs := prep.ContextStream; cs == nil || cs.Parts < 4 || cs.Note != "" {
		t.Errorf("a context split at every byte: %+v, want a part per file (more than go at a time)", cs)
	}
	splitZstd, _ := export(loopback, true)
	for name, got := range map[string]map[string]string{"streamed": streamed, "streamed with zstd": compressed, "in parts": split, "in parts with zstd": splitZstd} {
		for p, want := range session {
			if got[p] != want {
				t.Errorf("%s: %s %q, through the session %q", p, name, got[p], want)
			}
		}
		for p := range got {
			if _, ok := session[p]; !ok {
				t.Errorf("%s: %s, not sent by the session", p, name)
			}
		}
	}
	for _, gone := range []string{"secret.env", "debug.log", "build"} {
		if _, ok := streamed[gone]; ok {
			t.Errorf("%s was sent despite .dockerignore", gone)
		}
	}
	for _, kept := range []string{"keep.log", "empty", "dangling", "with space/link", "owned"} {
		if _, ok := streamed[kept]; !ok {
			t.Errorf("%s is missing", kept)
		}
	}
	if got := streamed["app/main.go"]; !strings.Contains(got, ".123456789Z") || !strings.Contains(got, " 0:0 ") {
		t.Errorf("app/main.go: %s (want root-owned, mtime to the nanosecond)", got)
	}
}

// A Dockerfile's own <name>.dockerignore wins over the context's, as in
// the dockerfile frontend, streamed or through the session.
func TestStreamIgnoreFile(t *testing.T) {
	build := streamWorld(t)
	dir := hostileTree(t)
	df := filepath.Join(dir, "app.Dockerfile")
	if err := os.WriteFile(df, []byte("FROM scratch\nCOPY . /ctx/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(df+".dockerignore", []byte("app/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, stream := range map[string]func(context.Context) (net.Listener, error){"streamed": loopback, "session": nil} {
		out := t.TempDir()
		if _, err := build(buildkit.Options{ContextDir: dir, Dockerfile: df, ContextStream: stream,
			Outputs: []buildkit.Output{{Type: "local", Dest: out, Attrs: map[string]string{}}}}); err != nil {
			t.Fatal(err)
		}
		got := tree(t, filepath.Join(out, "ctx"))
		if _, ok := got["app"]; ok {
			t.Errorf("%s: app/ was sent despite app.Dockerfile.dockerignore", name)
		}
		if _, ok := got["secret.env"]; !ok {
			t.Errorf("%s: secret.env is missing: the context's .dockerignore applied instead of the Dockerfile's", name)
		}
	}
}

// A runner that gives no listener: the build goes through the session and
// the report says why.
func TestStreamRefused(t *testing.T) {
	build := streamWorld(t)
	dir := hostileTree(t)
	refused := func(context.Context) (net.Listener, error) {
		return nil, errors.New("server x forwards no port to this machine: tcpip-forward request denied by peer")
	}
	out := t.TempDir()
	rep, err := build(buildkit.Options{ContextDir: dir, ContextStream: refused,
		Outputs: []buildkit.Output{{Type: "local", Dest: out, Attrs: map[string]string{}}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ContextStream == nil || !strings.Contains(rep.ContextStream.Note, "through the session: server x forwards no port") {
		t.Errorf("report: %+v", rep.ContextStream)
	}
	if _, err := os.Stat(filepath.Join(out, "ctx", "app", "main.go")); err != nil {
		t.Errorf("the context did not arrive: %v", err)
	}
}

// A context file that cannot be read here fails the build with the file
// named (a write-only sysfs file bind-mounted into the context: even root
// reads nothing), and the listener is closed.
func TestStreamUnreadable(t *testing.T) {
	build := streamWorld(t)
	dir := hostileTree(t)
	target := filepath.Join(dir, "app", "rescan")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("/sys/bus/pci/rescan", target, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(target, syscall.MNT_DETACH) })
	var ln net.Listener
	_, err := build(buildkit.Options{ContextDir: dir, ContextStream: func(ctx context.Context) (net.Listener, error) {
		l, err := loopback(ctx)
		ln = l
		return l, err
	}})
	if err == nil {
		t.Fatal("a context with an unreadable file built")
	}
	if !strings.Contains(err.Error(), "sending the context") || !strings.Contains(err.Error(), "app/rescan") {
		t.Errorf("the error does not name the file: %v", err)
	}
	if ln == nil {
		t.Fatal("no listener was asked for")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the context's listener is still open after the build")
	}
}

// elsewhere is a listener that names an address nothing listens on, as a
// forward on sshd's loopback looks to a daemon in another network
// namespace.
type elsewhere struct{ net.Listener }

func (elsewhere) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9} }

// A daemon that cannot reach the forward gets the context through the
// session, once more, and the report says why.
func TestStreamUnreached(t *testing.T) {
	build := streamWorld(t)
	dir := hostileTree(t)
	out := t.TempDir()
	rep, err := build(buildkit.Options{ContextDir: dir, Outputs: []buildkit.Output{{Type: "local", Dest: out, Attrs: map[string]string{}}},
		ContextStream: func(ctx context.Context) (net.Listener, error) {
			ln, err := loopback(ctx)
			return elsewhere{ln}, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	if cs := rep.ContextStream; cs == nil || !strings.Contains(cs.Note, "could not reach the forward on its loopback (127.0.0.1:9)") {
		t.Errorf("report: %+v", rep.ContextStream)
	}
	if _, err := os.Stat(filepath.Join(out, "ctx", "app", "main.go")); err != nil {
		t.Errorf("the context did not arrive: %v", err)
	}
}

// The Dockerfile and the ignore file reach the daemon inside the solve
// request: the frontend syncs neither through the session (each sync is
// round trips before the first step), and the build is what it was — the
// Dockerfile's instructions, the .dockerignore's exclusions.
func TestDefinitionGoesInTheRequest(t *testing.T) {
	build := streamWorld(t)
	dir := hostileTree(t)
	out := t.TempDir()
	var progress strings.Builder
	o := buildkit.Options{ContextDir: dir, NoCache: true, ProgressOut: &progress,
		Outputs: []buildkit.Output{{Type: "local", Dest: out, Attrs: map[string]string{}}}}
	if _, err := build(o); err != nil {
		t.Fatal(err)
	}
	got := tree(t, filepath.Join(out, "ctx"))
	if _, ok := got["secret.env"]; ok {
		t.Error("secret.env was sent despite .dockerignore")
	}
	if _, ok := got["keep.log"]; !ok {
		t.Error("keep.log is missing: .dockerignore's !keep.log did not apply")
	}
	// No .dockerignore at all: nothing is left out, and nothing is asked
	// of the session for it.
	if err := os.Remove(filepath.Join(dir, ".dockerignore")); err != nil {
		t.Fatal(err)
	}
	out2 := t.TempDir()
	o.Outputs[0].Dest = out2
	if _, err := build(o); err != nil {
		t.Fatal(err)
	}
	if _, ok := tree(t, filepath.Join(out2, "ctx"))["secret.env"]; !ok {
		t.Error("secret.env is missing with no .dockerignore")
	}
	for _, synced := range []string{"transferring dockerfile", "load .dockerignore"} {
		if strings.Contains(progress.String(), synced) {
			t.Errorf("the frontend synced the definition through the session (%q):\n%s", synced, progress.String())
		}
	}
	if !strings.Contains(progress.String(), "[internal] load build definition from Dockerfile") {
		t.Errorf("no step loads the build definition:\n%s", progress.String())
	}
}
