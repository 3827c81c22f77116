package pool_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv/link"
)

// A pool lease whose link resets mid-upload: the build fails naming the
// link, the lease is returned (the VM, unreachable for its recycle, is
// retired), and after a drain nothing is left — no server, key or host.
func TestPoolLeaseOverAResetLink(t *testing.T) {
	slow := link.Preset{Name: "slow", RTT: 20 * time.Millisecond, Mbit: 16}
	w := newWorld(t, worldConfig{hosts: true, link: &slow})
	dir := t.TempDir()
	blob := make([]byte, 8<<20)
	_, _ = rand.Read(blob)
	if err := os.WriteFile(filepath.Join(dir, "blob"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM base\nCOPY blob /blob\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var mu sync.Mutex
	var progress strings.Builder
	out := writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		progress.Write(b)
		if strings.Contains(progress.String(), "transferring context") {
			once.Do(func() {
				for _, p := range w.links.Each() {
					_ = p.Reset()
				}
			})
		}
		return len(b), nil
	})
	_, err := w.pl.Run(context.Background(), pipeline.Request{Workspace: "link", Build: buildkit.Options{
		ContextDir: dir, NamedContexts: []buildkit.NamedContext{w.base}, Progress: "plain", ProgressOut: out}})
	w.svc.Wait()
	if err == nil || !strings.Contains(err.Error(), "connection lost") || !strings.Contains(err.Error(), "127.77.") {
		t.Fatalf("err %v: want the lost link named\n%s", err, progress.String())
	}
	vms, lerr := w.client.List(context.Background())
	if lerr != nil {
		t.Fatal(lerr)
	}
	for _, v := range vms {
		if v.State == "leased" {
			t.Errorf("the lease was not returned: %+v", v)
		}
	}
	for _, p := range w.links.Each() {
		p.Heal(context.Background())
	}
	w.drainAndCheck(t)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
