package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"golang.org/x/crypto/bcrypt"
)

// Registry is a real OCI registry (distribution/v3) served on loopback over
// plain HTTP, with a log of every request it answered.
type Registry struct {
	Host string // 127.0.0.1:PORT
	Root string // the registry's storage directory
	mu   sync.Mutex
	reqs []Request
}

// Request is one request the registry answered.
type Request struct {
	Method, Path string
	Status       int
}

// RegistryOption configures StartRegistry.
type RegistryOption func(*configuration.Configuration, string) error

// WithBasicAuth makes the registry require user/password (htpasswd, bcrypt).
func WithBasicAuth(user, password string) RegistryOption {
	return func(cfg *configuration.Configuration, dir string) error {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			return err
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "lian-test", "path": path}}
		return nil
	}
}

// StartRegistry starts a registry for the test; it stops with the test.
func StartRegistry(t testing.TB, opts ...RegistryOption) *Registry {
	t.Helper()
	cfg := &configuration.Configuration{}
	for _, o := range opts {
		if err := o(cfg, t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	cfg.Storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": root}}
	cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Secret = "lian-build-test"
	app := handlers.NewApp(context.Background(), cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{Host: ln.Addr().String(), Root: root}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rw := &statusWriter{ResponseWriter: w, status: 200}
		app.ServeHTTP(rw, req)
		r.mu.Lock()
		r.reqs = append(r.reqs, Request{Method: req.Method, Path: req.URL.Path, Status: rw.status})
		r.mu.Unlock()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

// Requests returns the requests answered so far.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Since returns the requests answered after the first n.
func (r *Registry) Since(n int) []Request {
	all := r.Requests()
	if n > len(all) {
		return nil
	}
	return all[n:]
}

// Writes are the requests that change the registry (uploads, manifests, deletes).
func Writes(reqs []Request) []Request {
	var out []Request
	for _, q := range reqs {
		if q.Method == http.MethodPut || q.Method == http.MethodPost || q.Method == http.MethodPatch || q.Method == http.MethodDelete {
			out = append(out, q)
		}
	}
	return out
}

// Touched reports whether any request's path contained s.
func (r *Registry) Touched(s string) bool {
	for _, q := range r.Requests() {
		if strings.Contains(q.Path, s) {
			return true
		}
	}
	return false
}

// ManifestDigest returns the digest of repo:tag, or "" when it does not exist.
func (r *Registry) ManifestDigest(t testing.TB, repo, tag string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, fmt.Sprintf("http://%s/v2/%s/manifests/%s", r.Host, repo, tag), nil)
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
	}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return ""
	}
	return resp.Header.Get("Docker-Content-Digest")
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
