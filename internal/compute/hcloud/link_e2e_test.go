package hcloud_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv/link"
)

// slow is a link on which a 12 MB context takes seconds to cross.
var slow = link.Preset{Name: "slow", RTT: 20 * time.Millisecond, Mbit: 16}

// linkBuild builds a context of 12 MB (two streams) over the world's link,
// applying fault once the context is crossing it.
func (w *world) linkBuild(t *testing.T, fault func(p *link.Proxy)) (pipeline.Result, error, string) {
	prog := &link.WhenUploading{Hosts: w.links, Fault: fault}
	res, err := w.pl.Run(context.Background(), pipeline.Request{Workspace: "link", Build: buildkit.Options{
		ContextDir: link.UploadContext(t, 12<<20), NamedContexts: []buildkit.NamedContext{w.base}, Progress: "plain", ProgressOut: prog}})
	if !prog.Fired() {
		t.Errorf("the context never crossed the link:\n%s", prog.Text())
	}
	return res, err, prog.Text()
}

// A build across a shaped link: the server is reached on its own address
// through it, and everything goes afterwards.
func TestBuildAcrossAShapedLink(t *testing.T) {
	eu := link.Presets[1]
	w := newWorld(t, worldConfig{link: &eu})
	res, err, progress := w.build(t, "FROM base\nRUN echo across > /f\n")
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	if a := res.Attempts[0].Runner; a == nil || !strings.Contains(a.Address, "127.77.") {
		t.Errorf("the runner was not reached through its link: %+v", res.Attempts[0].Runner)
	}
	w.assertNothingLeft(t)
}

// The link resets mid-upload: the build fails with an error that names the
// runner's address and says the connection was lost on the way (not only
// BuildKit's "EOF"), is not taken for an OOM, and the server, key and host
// are removed.
func TestLinkResetMidUpload(t *testing.T) {
	w := newWorld(t, worldConfig{link: &slow})
	res, err, progress := w.linkBuild(t, func(p *link.Proxy) { _ = p.Reset() })
	if err == nil {
		t.Fatalf("the build survived a reset link:\n%s", progress)
	}
	if len(res.Attempts) != 1 || res.Attempts[0].OOM {
		t.Fatalf("attempts %+v: want one, not an OOM", res.Attempts)
	}
	for _, want := range []string{"ssh 127.77.", "connection lost"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "network on the way") {
		t.Errorf("the error does not say the link reset or closed: %v", err)
	}
	t.Logf("error after the reset: %v", err)
	w.assertNothingLeft(t)
}

// The link stalls mid-upload (no byte crosses, the connection stays open):
// the keep-alives find it within two intervals, the build fails naming the
// link, and everything is removed.
func TestLinkStallMidUpload(t *testing.T) {
	w := newWorld(t, worldConfig{link: &slow})
	start := time.Now()
	_, err, progress := w.linkBuild(t, func(p *link.Proxy) { _ = p.Stall(0) })
	if err == nil {
		t.Fatalf("the build survived a stalled link:\n%s", progress)
	}
	if !strings.Contains(err.Error(), "ssh 127.77.") || !strings.Contains(err.Error(), "keep-alive") {
		t.Errorf("the error does not name the stalled link: %v", err)
	}
	if d := time.Since(start); d > 90*time.Second {
		t.Errorf("the stall was found after %s", d)
	}
	w.assertNothingLeft(t)
}

// Closes that take seconds on the link hold nothing up for good: the
// build, its context in two streams, succeeds and everything is removed.
func TestLinkSlowClose(t *testing.T) {
	w := newWorld(t, worldConfig{link: &slow})
	res, err, progress := w.linkBuild(t, func(p *link.Proxy) { _ = p.SlowClose(3 * time.Second) })
	if err != nil {
		t.Fatalf("build with slow closes: %v\n%s", err, progress)
	}
	if cs := res.Attempts[0].ContextStream; cs == nil || cs.Parts != 2 || cs.Note != "" {
		t.Errorf("the context went %+v, want two streams", cs)
	}
	w.assertNothingLeft(t)
}
