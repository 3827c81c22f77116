package pool_test

import (
	"context"
	"strings"
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
	prog := &link.WhenUploading{Hosts: w.links, Fault: func(p *link.Proxy) { _ = p.Reset() }}
	_, err := w.pl.Run(context.Background(), pipeline.Request{Workspace: "link", Build: buildkit.Options{
		ContextDir: link.UploadContext(t, 12<<20), NamedContexts: []buildkit.NamedContext{w.base}, Progress: "plain", ProgressOut: prog}})
	w.svc.Wait()
	if err == nil || !strings.Contains(err.Error(), "connection lost") || !strings.Contains(err.Error(), "127.77.") {
		t.Fatalf("err %v: want the lost link named\n%s", err, prog.Text())
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
