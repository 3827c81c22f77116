package proxmox_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/compute/proxmox"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakeproxmox"
	"github.com/lian-build/action/internal/testenv/runnerhost"
	"github.com/lian-build/action/internal/testenv/vmhost"
)

const token = "lian@pve!runners=5e1f0c2a-7d3b-4a8e-9c61-2f4b8d0e7a13"

type world struct {
	hosts *runnerhost.Hosts
	fake  *fakeproxmox.Fake
	local *local.Provider
	prov  *proxmox.Provider
	pl    *pipeline.Pipeline
	base  buildkit.NamedContext
	ca    string // the fake's certificate
}

// newWorld is the fake Proxmox API whose VMs are runner hosts (netns, sshd,
// buildkitd in a cgroup of the tier's memory) and a pipeline on the
// proxmox provider.
func newWorld(t *testing.T, tierMemory map[string]int64, spawnTimeout time.Duration) *world {
	testenv.Require(t)
	testenv.StartSSHD(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("iproute2 is needed for runner hosts")
	}
	opts := testenv.HostOptions(t, tierMemory)
	w := &world{hosts: &runnerhost.Hosts{Options: opts, Dir: t.TempDir()}}
	var err error
	if w.local, err = local.New(opts); err != nil {
		t.Fatal(err)
	}
	w.fake = fakeproxmox.New(token, w.hosts)
	t.Cleanup(w.fake.Close)
	if w.ca, err = w.fake.CAFile(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if w.prov, err = proxmox.New(proxmox.Settings{Endpoint: w.fake.Endpoint(), Token: token, Node: fakeproxmox.Node,
		Template: fakeproxmox.TemplateID, PollEvery: 100 * time.Millisecond, CAFile: w.ca}); err != nil {
		t.Fatal(err)
	}
	if spawnTimeout == 0 {
		spawnTimeout = time.Minute
	}
	if w.pl, err = pipeline.New(pipeline.Config{Provider: w.prov, SpawnTimeout: spawnTimeout}); err != nil {
		t.Fatal(err)
	}
	w.base, _ = buildkit.ParseNamedContext("base=oci-layout://" + testenv.BaseLayout(t))
	return w
}

func (w *world) build(t *testing.T, dockerfile string, edit func(*pipeline.Request)) (pipeline.Result, error, string) {
	return testenv.BuildDockerfile(t, w.pl, dockerfile, edit)
}

// assertNothingLeft: no VM but the template, no network namespace, no runner host.
func (w *world) assertNothingLeft(t *testing.T) {
	t.Helper()
	if n := w.fake.VMs(); n != 0 {
		t.Errorf("%d VMs left", n)
	}
	testenv.AssertNoRunnerHosts(t, w.local)
}

func TestBuildOnAProxmoxClone(t *testing.T) {
	w := newWorld(t, nil, 0)
	res, err, progress := w.build(t, "FROM base\nRUN echo on a proxmox clone\n", nil)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	ri := res.Attempts[0].Runner
	if ri == nil || ri.Provider != "proxmox" || !strings.HasPrefix(ri.Server, "VM 1") || ri.Location != fakeproxmox.Node {
		t.Fatalf("runner %+v", ri)
	}
	reqs := strings.Join(w.fake.Requests(), "\n")
	for _, want := range []string{"POST /api2/json/nodes/pve/qemu/9000/clone", "PUT /api2/json/nodes/pve/qemu/100/config",
		"POST /api2/json/nodes/pve/qemu/100/status/start", "GET /api2/json/nodes/pve/qemu/100/agent/network-get-interfaces",
		"POST /api2/json/nodes/pve/qemu/100/status/stop", "DELETE /api2/json/nodes/pve/qemu/100"} {
		if !strings.Contains(reqs, want) {
			t.Errorf("no %s in\n%s", want, reqs)
		}
	}
	t.Logf("spawn %d ms (create %d, boot %d, ready %d)", res.Attempts[0].SpawnMS, ri.Spawn.CreateMS, ri.Spawn.BootMS, ri.Spawn.ReadyMS)
	w.assertNothingLeft(t)
}

// `lian-build runners image --provider proxmox`: a clone of the stock
// template, given the boot unit, prepared and stopped, becomes a runner
// template — tagged and labelled, without the stock template's vendor
// snippet or the maker's key — and the next lease clones it, the newest
// of this BuildKit made from the stock template; GC leaves it.
func TestRunnerTemplate(t *testing.T) {
	w := newWorld(t, nil, 0)
	w.fake.SetTemplate("cicustom", "vendor=local:snippets/lian-build.yaml")
	ctx := context.Background()
	img, err := w.prov.MakeImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.Atoi(img.ID)
	vm := w.fake.VM(id)
	switch {
	case vm == nil || !vm.Template:
		t.Fatalf("image %+v: no template %d", img, id)
	case vm.Config["tags"] != proxmox.ImageTag || vm.Config["cicustom"] != "" || vm.Config["sshkeys"] != "":
		t.Fatalf("template config %v", vm.Config)
	case img.Labels[proxmox.RunnerImageLabel] != proxmox.RunnerImageVersion || !strings.Contains(vm.Config["description"], proxmox.RunnerImageLabel+"="+proxmox.RunnerImageVersion):
		t.Fatalf("labels %v, description %q", img.Labels, vm.Config["description"])
	}
	if n := w.fake.VMs(); n != 0 {
		t.Fatalf("%d VMs besides the templates after making one", n)
	}
	// A newer template of another BuildKit is not taken.
	other, err := w.prov.MakeImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	otherID, _ := strconv.Atoi(other.ID)
	w.fake.SetConfig(otherID, "description", strings.ReplaceAll(w.fake.VM(otherID).Config["description"], proxmox.RunnerImageVersion, "buildkit-v0.1.0"))
	res, err, progress := w.build(t, "FROM base\nRUN echo on a clone of a runner template\n", nil)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	reqs := strings.Join(w.fake.Requests(), "\n")
	if clone := fmt.Sprintf("POST /api2/json/nodes/pve/qemu/%d/clone", id); strings.Count(reqs, clone) != 1 {
		t.Errorf("the build did not clone runner template %d (%s): %+v\n%s", id, clone, res.Attempts[0].Runner, reqs)
	}
	if _, err := w.prov.GC(ctx); err != nil || w.fake.VM(id) == nil {
		t.Fatalf("gc: %v; template %d there: %v", err, id, w.fake.VM(id) != nil)
	}
	w.assertNothingLeft(t)
}

func TestOOMOnAProxmoxCloneRetriesOnTheNextTier(t *testing.T) {
	w := newWorld(t, map[string]int64{"cax11": 192 << 20, "cax21": 1 << 30}, 0)
	res, err, progress := w.build(t, "FROM base\nRUN head -c 400000000 /dev/zero | tail > /dev/null\n", func(r *pipeline.Request) { r.RunnerOverride = "cax11" })
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	if len(res.Attempts) != 2 || !res.Attempts[0].OOM || res.Attempts[1].Tier != "cax21" {
		t.Fatalf("attempts %+v", res.Attempts)
	}
	w.assertNothingLeft(t)
}

func TestCloneTaskThatFails(t *testing.T) {
	w := newWorld(t, nil, 0)
	w.fake.Inject(fakeproxmox.Faults{CloneFails: true})
	_, err, _ := w.build(t, "FROM base\nRUN true\n", nil)
	if err == nil || !strings.Contains(err.Error(), "qmclone") || !strings.Contains(err.Error(), "not have enough free space") {
		t.Fatalf("err = %v, want the clone task's exit status", err)
	}
	w.assertNothingLeft(t)
}

func TestGuestAgentThatNeverAnswers(t *testing.T) {
	w := newWorld(t, nil, 3*time.Second)
	w.fake.Inject(fakeproxmox.Faults{AgentSilent: true})
	_, err, _ := w.build(t, "FROM base\nRUN true\n", nil)
	if err == nil || !strings.Contains(err.Error(), "guest agent") || !strings.Contains(err.Error(), "QEMU guest agent is not running") {
		t.Fatalf("err = %v, want the guest agent's silence", err)
	}
	w.assertNothingLeft(t)
}

// gc finds the provider's VMs by tag, reads the lease from the
// description, and stops and deletes the expired one; a live one stays.
func TestGCByTagAndDescription(t *testing.T) {
	w := newWorld(t, nil, 0)
	ctx := context.Background()
	expired, err := w.prov.Spawn(ctx, sizingTier(), compute.Lease{ID: "gc-expired", TTL: -time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer expired.Destroy(ctx)
	live, err := w.prov.Spawn(ctx, sizingTier(), compute.Lease{ID: "gc-live", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	infos, err := w.prov.List(ctx)
	if err != nil || len(infos) != 2 {
		t.Fatalf("List = %+v, %v", infos, err)
	}
	removed, err := w.prov.GC(ctx)
	if err != nil || len(removed) != 1 || removed[0].ID != "gc-expired" || !strings.Contains(removed[0].Why, "expired") {
		t.Fatalf("GC = %+v, %v", removed, err)
	}
	if n := w.fake.VMs(); n != 1 {
		t.Errorf("%d VMs after gc, want the live one", n)
	}
	if err := live.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	w.assertNothingLeft(t)
}

// A wrong token is refused, and the error says what the API said.
func TestWrongTokenIsRefused(t *testing.T) {
	w := newWorld(t, nil, 0)
	p, err := proxmox.New(proxmox.Settings{Endpoint: w.fake.Endpoint(), Token: "lian@pve!runners=wrong", Node: fakeproxmox.Node, Template: fakeproxmox.TemplateID, CAFile: w.ca})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.List(context.Background())
	var ae *proxmox.APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(ae.Msg, "authentication failure") {
		t.Fatalf("err = %v", err)
	}
	// Without its CA the self-signed certificate is refused; plain http
	// only when asked for, since the token would cross in clear.
	p, _ = proxmox.New(proxmox.Settings{Endpoint: w.fake.Endpoint(), Token: token, Node: fakeproxmox.Node, Template: fakeproxmox.TemplateID})
	if _, err := p.List(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an unknown certificate was trusted: %v", err)
	}
	plain := strings.Replace(w.fake.Endpoint(), "https://", "http://", 1)
	if _, err := proxmox.New(proxmox.Settings{Endpoint: plain, Token: token, Node: fakeproxmox.Node, Template: fakeproxmox.TemplateID}); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Errorf("plain http accepted: %v", err)
	}
	if _, err := proxmox.New(proxmox.Settings{Endpoint: plain, Token: token, Node: fakeproxmox.Node, Template: fakeproxmox.TemplateID, InsecureHTTP: true}); err != nil {
		t.Errorf("plain http refused though asked for: %v", err)
	}
}

func sizingTier() sizing.Tier { return sizing.HCloud[0] }

// vmWorld is the fake Proxmox API whose VMs are real (NoCloud) VMs, its
// stock template's cicustom vendor snippet installing runc and the pinned
// buildkitd from this machine, and a pipeline on it.
type vmWorld struct {
	dl    *vmhost.Downloads
	hosts *vmhost.Hosts
	fake  *fakeproxmox.Fake
	prov  *proxmox.Provider
	pl    *pipeline.Pipeline
}

func newVMWorld(t *testing.T) *vmWorld {
	w := &vmWorld{dl: testenv.RunnerDownloads(t)}
	w.hosts = testenv.VMHosts(t, w.dl.Port)
	w.hosts.NoCloud = true
	w.hosts.MemoryMiB = map[string]int{"cax11": 1024}
	w.fake = fakeproxmox.New(token, w.hosts)
	t.Cleanup(w.fake.Close)
	w.fake.AddSnippet("local:snippets/lian-build.yaml", remote.CloudInit(remote.DefaultSocket, nil, w.dl.Software()))
	w.fake.SetTemplate("cicustom", "vendor=local:snippets/lian-build.yaml")
	ca, err := w.fake.CAFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if w.prov, err = proxmox.New(proxmox.Settings{Endpoint: w.fake.Endpoint(), Token: token, Node: fakeproxmox.Node,
		Template: fakeproxmox.TemplateID, PollEvery: time.Second, CAFile: ca}); err != nil {
		t.Fatal(err)
	}
	if w.pl, err = pipeline.New(pipeline.Config{Provider: w.prov, SpawnTimeout: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	return w
}

// Proxmox clones that are real VMs. The runner template is made from a
// clone of the stock template, whose cloud-init reads Proxmox's cloud-init
// drive (a NoCloud seed labelled cidata: the user-data Proxmox generates
// from the clone's sshkeys, and the template's cicustom vendor snippet
// that installs and starts buildkitd as Hetzner's user-data does); the
// provider finds its address through the VM's own guest agent. The
// template's clone then boots ready: its disk is the template's (buildkitd
// installed, the boot unit enabled), its cloud-init runs as a new instance
// (the lease's key, new host keys) without the vendor snippet, buildkitd
// starts by itself in the build cgroup, nothing is downloaded, and the
// build runs on the guest's kernel under cgroup v2.
func TestRunnerTemplateOnAVM(t *testing.T) {
	w := newVMWorld(t)
	start := time.Now()
	img, err := w.prov.MakeImage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runner template %s made in %v (%d files downloaded)", img.ID, time.Since(start).Round(time.Second), w.dl.Served())
	before := w.dl.Served()
	res, err, progress := testenv.BuildDockerfile(t, w.pl, "FROM base\nRUN echo on a clone of a runner template\n", nil)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	ri := res.Attempts[0].Runner
	if ri == nil || ri.CgroupVersion != 2 || !strings.Contains(ri.Kernel, "cloud-amd64") {
		t.Fatalf("runner %+v", ri)
	}
	t.Logf("spawn %d ms (clone %d, boot %d, ready %d) on Linux %s", res.Attempts[0].SpawnMS, ri.Spawn.CreateMS, ri.Spawn.BootMS, ri.Spawn.ReadyMS, ri.Kernel)
	if n := w.dl.Served() - before; n != 0 {
		t.Errorf("the clone of the runner template downloaded %d files", n)
	}
	if !strings.Contains(strings.Join(w.fake.Requests(), "\n"), "POST /api2/json/nodes/pve/qemu/"+img.ID+"/clone") {
		t.Errorf("the build did not clone runner template %s", img.ID)
	}
	if n := w.fake.VMs(); n != 0 {
		t.Errorf("%d VMs left", n)
	}
	if ids := w.hosts.IDs(); len(ids) != 0 {
		t.Errorf("VMs still running: %v", ids)
	}
}
