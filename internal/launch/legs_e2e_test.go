package launch_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/launch"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/report"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/runnerhost"
)

const hcloudToken = "hc-T0KEN-legs-5c"

// multiWorld is the fake Hetzner API with runner hosts that reach a test
// registry, and settings that build there for two platforms.
func multiWorld(t testing.TB, dockerfile string, tierMemory ...map[string]int64) (*fakehcloud.Fake, *testenv.Registry, frontdoor.Settings) {
	testenv.Require(t)
	testenv.StartSSHD(t)
	reg := testenv.StartRegistry(t)
	_, portText, _ := net.SplitHostPort(reg.Host)
	port, _ := strconv.Atoi(portText)
	var mem map[string]int64
	if len(tierMemory) > 0 {
		mem = tierMemory[0]
	}
	hosts := &runnerhost.Hosts{Options: testenv.HostOptions(t, mem), Dir: t.TempDir(), Forward: []int{port}}
	f := fakehcloud.New(hcloudToken, hosts)
	t.Cleanup(f.Close)
	t.Setenv("HCLOUD_TOKEN", hcloudToken)
	dir := t.TempDir()
	for name, text := range map[string]string{"Dockerfile": dockerfile, "amd64.txt": "x86_64\n", "arm64.txt": "aarch64\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := frontdoor.Settings{ComputeProvider: "hcloud", Context: dir, Tags: []string{reg.Host + "/team/multi:1"}, Push: true,
		Platforms: []string{"linux/amd64", "linux/arm64"}, Insecure: []string{reg.Host}, Progress: "plain", Workspace: "multi", MetricsDir: t.TempDir()}
	s.SetOption("hcloud-endpoint", f.Endpoint())
	return f, reg, s
}

// Two platforms on a provider with machines of both architectures: one
// server of each (cpx for amd64, cax for arm64) builds its platform, each
// pushes by digest, and one index under the tag references both; each
// manifest's file is its platform's. Nothing is left.
func TestTwoPlatformsBuildOnTwoRunnersIntoOneIndex(t *testing.T) {
	f, reg, s := multiWorld(t, "FROM scratch\nARG TARGETARCH\nCOPY ${TARGETARCH}.txt /arch.txt\n")
	s.Registry = reg.Host + "/cache"
	res, progress := build(t, s)
	if len(res.Legs) != 2 || res.Outcome != pipeline.OutcomeSuccess || !strings.HasPrefix(res.Digest, "sha256:") {
		t.Fatalf("result %+v", res)
	}
	for _, want := range []string{"[amd64] ", "[arm64] "} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress has no %q lines", want)
		}
	}
	// Each leg's server is billed its started hour at its list price:
	// cax11 €0.0060 and cpx21 €0.0135 in the fake's price list.
	if math.Abs(res.CostEUR-0.0195) > 1e-9 {
		t.Errorf("cost %.4f, want 0.0195 (cax11 + cpx21, one started hour each)", res.CostEUR)
	}
	types := serverTypes(f)
	if len(types) != 2 || !strings.HasPrefix(types[0], "cax") || !strings.HasPrefix(types[1], "cpx") {
		t.Errorf("servers created: %v, want one cpx (amd64) and one cax (arm64)", types)
	}
	checkIndex(t, reg.Host+"/team/multi:1", res.Digest, map[string]string{"amd64": "x86_64\n", "arm64": "aarch64\n"})
	if s, k := f.Counts(); s != 0 || k != 0 {
		t.Errorf("left %d servers and %d keys", s, k)
	}
	// Again: each leg imports its own architecture's cache namespace and
	// every step is cached.
	again, _ := build(t, s)
	for _, l := range again.Legs {
		r := l.Result
		arch := strings.TrimPrefix(l.Platforms[0], "linux/")
		if r.StepsCached == 0 || r.StepsCached != r.StepsTotal || len(r.CacheImports) == 0 || !strings.Contains(r.CacheImports[0], "/ci/multi-"+arch+":") {
			t.Errorf("%s leg, second build: %d/%d steps cached, imports %v", arch, r.StepsCached, r.StepsTotal, r.CacheImports)
		}
	}
	// The images are the same; the index differs only by the legs'
	// provenance (it records when each leg was built).
	for i, l := range again.Legs {
		if imageOf(t, reg.Host, l.Result.Digest) != imageOf(t, reg.Host, res.Legs[i].Result.Digest) {
			t.Errorf("%v: the same sources made another image", l.Platforms)
		}
	}
}

func build(t testing.TB, s frontdoor.Settings) (pipeline.Result, string) {
	t.Helper()
	req, err := s.Request()
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := launch.Build(context.Background(), s, req, launch.BuildOptions{Progress: &progress})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress.String())
	}
	return res, progress.String()
}

// A leg that fails stops the other (its runner destroyed mid-step) and
// fails the build naming its platform; the tag is never written.
func TestAFailedLegStopsTheOtherAndTagsNothing(t *testing.T) {
	f, reg, s := multiWorld(t, "FROM base AS b-amd64\nRUN sleep 120\nFROM scratch AS b-arm64\nCOPY missing.txt /\nFROM b-${TARGETARCH}\n")
	s.BuildContexts = []string{"base=oci-layout://" + testenv.BaseLayout(t)}
	req, err := s.Request()
	if err != nil {
		t.Fatal(err)
	}
	res, err := launch.Build(context.Background(), s, req, launch.BuildOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "linux/arm64: ") || res.Outcome == pipeline.OutcomeSuccess {
		t.Fatalf("err %v, outcome %s: want the arm64 leg's failure", err, res.Outcome)
	}
	if len(res.Legs) != 2 || res.Legs[0].Platforms[0] != "linux/amd64" || res.Legs[0].Result.Outcome != pipeline.OutcomeCanceled {
		t.Errorf("the amd64 leg was not stopped: %+v", res.Legs)
	}
	ref, _ := name.ParseReference(reg.Host+"/team/multi:1", name.Insecure)
	if _, err := remote.Head(ref); err == nil {
		t.Error("the tag was written although a leg failed")
	}
	if s, k := f.Counts(); s != 0 || k != 0 {
		t.Errorf("left %d servers and %d keys", s, k)
	}
}

// The arm64 leg runs its RUN steps on an arm64 userland (QEMU user mode
// stands in for a cax server's CPU here), the amd64 leg on this machine's;
// the arm64 leg runs out of memory on cax11 and is retried alone on cax21
// while the amd64 leg's result is kept.
func TestEachLegRunsItsArchitectureAndRetriesAlone(t *testing.T) {
	const mib = 1 << 20
	f, reg, s := multiWorld(t, "FROM base\nRUN set -e; if [ \"$(uname -m)\" = aarch64 ]; then dd if=/dev/zero of=/dev/null bs=400M count=1; fi; uname -m > /arch.txt\n",
		map[string]int64{"cax11": 160 * mib, "cax21": 1024 * mib})
	s.BuildContexts = []string{"base=oci-layout://" + testenv.MultiArchBase(t)}
	res, progress := build(t, s)
	legs := map[string]pipeline.Result{}
	for _, l := range res.Legs {
		legs[l.Platforms[0]] = l.Result
	}
	arm, amd := legs["linux/arm64"], legs["linux/amd64"]
	if len(arm.Attempts) != 2 || !arm.Attempts[0].OOM || arm.Attempts[1].Tier != "cax21" || arm.OOMRetries != 1 {
		t.Errorf("arm64 leg attempts %+v\n%s", arm.Attempts, progress)
	}
	if len(amd.Attempts) != 1 || amd.Attempts[0].Outcome != pipeline.OutcomeSuccess || amd.Attempts[0].Tier != "cax11" {
		t.Errorf("amd64 leg attempts %+v", amd.Attempts)
	}
	if res.OOMRetries != 1 {
		t.Errorf("the build's OOM retries = %d, want the arm64 leg's 1", res.OOMRetries)
	}
	if math.Abs(arm.CostEUR-(0.0060+0.0104)) > 1e-9 || math.Abs(res.CostEUR-(0.0060+0.0104+0.0135)) > 1e-9 {
		t.Errorf("costs: arm64 leg %.4f (want cax11 + cax21 = 0.0164), build %.4f (want 0.0299)", arm.CostEUR, res.CostEUR)
	}
	checkIndex(t, reg.Host+"/team/multi:1", res.Digest, map[string]string{"amd64": "x86_64\n", "arm64": "aarch64\n"})
	if types := serverTypes(f); strings.Join(types, " ") != "cax11 cax21 cpx21" {
		t.Errorf("servers created: %v, want cax11 (OOM), cax21 and cpx21", types)
	}
	if s, k := f.Counts(); s != 0 || k != 0 {
		t.Errorf("left %d servers and %d keys", s, k)
	}
}

// serverTypes are the server types the client created.
func serverTypes(f *fakehcloud.Fake) []string {
	var out []string
	for _, r := range f.Requests() {
		var body struct {
			ServerType json.RawMessage `json:"server_type"`
		}
		if r.Method != "POST" || r.Path != "/servers" || json.Unmarshal([]byte(r.Body), &body) != nil {
			continue
		}
		id := strings.Trim(string(body.ServerType), `"`)
		for _, st := range fakehcloud.ServerTypes {
			if strconv.FormatInt(st.ID, 10) == id || st.Name == id {
				out = append(out, st.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// checkIndex pulls the index at tag back: its digest, one manifest per
// architecture, and each manifest's /arch.txt.
func checkIndex(t *testing.T, tag, digest string, want map[string]string) {
	t.Helper()
	ref, err := name.ParseReference(tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pulling the index: %v", err)
	}
	if d, _ := idx.Digest(); d.String() != digest {
		t.Errorf("index digest %s, the build said %s", d, digest)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	attested := map[string]bool{}
	for _, m := range im.Manifests {
		if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			attested[m.Annotations["vnd.docker.reference.digest"]] = true
		}
	}
	for _, m := range im.Manifests {
		if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		if !attested[m.Digest.String()] {
			t.Errorf("manifest %s (%v) has no provenance attestation in the index", m.Digest, m.Platform)
		}
		if m.Platform == nil {
			t.Errorf("manifest %s has no platform", m.Digest)
			continue
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		got[m.Platform.Architecture] = fileIn(t, img, "arch.txt")
	}
	for arch, text := range want {
		if got[arch] != text {
			t.Errorf("%s manifest's arch.txt = %q, want %q (all: %v)", arch, got[arch], text, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("index has %d platforms, want %d: %v", len(got), len(want), got)
	}
}

func fileIn(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if strings.TrimPrefix(h.Name, "./") == path {
				b, _ := io.ReadAll(tr)
				rc.Close()
				return string(b)
			}
		}
		rc.Close()
	}
	return ""
}

// With --emulate-platforms the local provider's one runner builds the
// platform this machine does not run through QEMU, and the report says so.
func TestLocalEmulatesAForeignPlatform(t *testing.T) {
	base := testenv.MultiArchBase(t)
	dir, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM base\nRUN uname -m > /arch.txt\nFROM scratch\nCOPY --from=0 /arch.txt /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := frontdoor.Settings{ComputeProvider: "local", Context: dir, Platforms: []string{"linux/arm64"}, EmulatePlatforms: true,
		BuildContexts: []string{"base=oci-layout://" + base}, Outputs: []string{"type=local,dest=" + out}, Progress: "plain", Workspace: "emu", MetricsDir: t.TempDir()}
	s.SetOption("state-dir", filepath.Join(t.TempDir(), "runners"))
	s.SetOption("buildkitd", testenv.Require(t))
	res, progress := build(t, s)
	b, err := os.ReadFile(filepath.Join(out, "arch.txt"))
	if err != nil || string(b) != "aarch64\n" {
		t.Fatalf("arch.txt = %q, %v\n%s", b, err, progress)
	}
	if strings.Join(res.Emulated, ",") != "linux/arm64" {
		t.Errorf("the result does not say linux/arm64 was emulated: %v", res.Emulated)
	}
	var rep bytes.Buffer
	report.Write(&rep, res)
	if !strings.Contains(rep.String(), "linux/arm64 through QEMU on the runner") {
		t.Errorf("the report does not say so:\n%s", rep.String())
	}
}

// imageOf is the image manifest a leg pushed (its index holds it and its
// attestation).
func imageOf(t *testing.T, host, digest string) string {
	t.Helper()
	ref, _ := name.ParseReference(host+"/team/multi@"+digest, name.Insecure)
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !desc.MediaType.IsIndex() {
		return desc.Digest.String()
	}
	idx, _ := desc.ImageIndex()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.OS != "unknown" {
			return m.Digest.String()
		}
	}
	return ""
}
