package launch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/report"
	"github.com/lian-build/action/internal/sbom"
	"github.com/lian-build/action/internal/testenv"
)

// dpkgStatus makes the busybox base a Debian system to a scanner: the
// packages dpkg says are installed.
const dpkgStatus = `Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u9
Description: GNU C Library: Shared libraries

Package: busybox-static
Status: install ok installed
Architecture: amd64
Version: 1:1.35.0-4+b3
Description: Standalone rescue shell with tons of builtin utilities

Package: ca-certificates
Status: install ok installed
Architecture: all
Version: 20230311
Description: Common CA certificates
`

// --sbom with lian-build's own scanner image (pushed to the test registry,
// pinned by digest; nothing pulled from Docker Hub): the pushed index
// carries an SPDX SBOM listing the Debian packages of the image, beside
// the provenance, plus a scan of the build context when the Dockerfile
// asks (ARG BUILDKIT_SBOM_SCAN_CONTEXT): the lock file is a dependency of
// the source tree there, not an installed package of the image; the
// report says how many packages, and build.attested carries the
// attestation's digest.
func TestPushCarriesAnOfflineSBOM(t *testing.T) {
	testenv.Require(t)
	reg := testenv.StartRegistry(t)
	ns := testenv.StartNATS(t, true)
	sub := testenv.SubscribeNATS(t, ns, "lian-build.sbom.build.>")
	scanner := testenv.SBOMScanner(t, reg)
	dir := t.TempDir()
	for f, body := range map[string]string{
		"Dockerfile": "FROM base\nARG BUILDKIT_SBOM_SCAN_CONTEXT\nCOPY status /var/lib/dpkg/status\nCOPY os-release /etc/os-release\nCOPY package-lock.json /app/\nRUN --mount=type=secret,id=tok,env=TOK test -n \"$TOK\" && echo used > /secret-used\n",
		"status":     dpkgStatus,
		"os-release": "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
		"package-lock.json": `{"name":"app","lockfileVersion":3,"packages":{"":{"name":"app"},` +
			`"node_modules/left-pad":{"version":"1.3.0","resolved":"https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz"}}}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tag := reg.Host + "/team/sbom:1"
	s := frontdoor.Settings{ComputeProvider: "local", Context: dir, Tags: []string{tag}, Push: true, Insecure: []string{reg.Host},
		BuildContexts: []string{"base=oci-layout://" + testenv.BaseLayout(t)}, BuildArgs: []string{"BUILDKIT_SBOM_SCAN_CONTEXT=true"},
		Secrets: []string{"id=tok,env=SBOM_TEST_TOKEN"}, SBOM: "true", SBOMScanner: scanner, Progress: "plain", Workspace: "sbom", MetricsDir: t.TempDir(), NatsURL: ns.ClientURL()}
	s.SetOption("state-dir", filepath.Join(t.TempDir(), "runners"))
	s.SetOption("buildkitd", testenv.Require(t))
	const secret = "sbom-secret-5f0c1e7d"
	t.Setenv("SBOM_TEST_TOKEN", secret)
	res, progress := build(t, s)
	if held := testenv.RegistryHolding(t, reg.Root, secret, "libc6"); len(held[secret]) > 0 || len(held["libc6"]) == 0 {
		t.Errorf("the build secret is in blobs %v (the search sees the SBOM: %v)", held[secret], held["libc6"])
	}

	if len(res.Attestations) != 1 {
		t.Fatalf("attestations %+v, want one (linux/amd64)\n%s", res.Attestations, progress)
	}
	a := res.Attestations[0]
	if a.Packages < 3 || a.Scans != 2 || !slices.Contains(a.Predicates, sbom.PredicateSPDX) || !slices.Contains(a.Predicates, "https://slsa.dev/provenance/v1") {
		t.Errorf("attestation %+v: want ≥ 3 packages, 2 scans (the image, the context), SPDX and SLSA", a)
	}
	image, context := spdxOf(t, tag)
	for _, want := range []string{"libc6@2.36-9+deb12u9", "busybox-static@1:1.35.0-4+b3", "ca-certificates@20230311"} {
		if !strings.Contains(image, want) {
			t.Errorf("the image's SBOM lacks %s: %s", want, image)
		}
	}
	if !strings.Contains(context, "left-pad@1.3.0") || strings.Contains(image, "left-pad") {
		t.Errorf("the context's packages belong to the context's SBOM only:\nimage: %s\ncontext: %s", image, context)
	}
	var rep strings.Builder
	report.Write(&rep, res)
	if want := "SPDX, " + strconv.Itoa(a.Packages) + " packages (linux/amd64), and 1 scans of the context or stages"; !strings.Contains(rep.String(), want) {
		t.Errorf("the report lacks %q:\n%s", want, rep.String())
	}
	attested := nextEvent(t, sub, pipeline.EventAttested)
	if got := attested.Result.Attestations; len(got) != 1 || got[0].Digest != a.Digest || got[0].Packages != a.Packages {
		t.Errorf("build.attested carries %+v, want %+v", got, res.Attestations)
	}
}

// nextEvent is the next event named name on sub.
func nextEvent(t *testing.T, sub *nats.Subscription, name string) pipeline.Event {
	t.Helper()
	for {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no %s event: %v", name, err)
		}
		var e pipeline.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		if e.Name == name {
			return e
		}
	}
}

// spdxOf lists the packages (name@version) of the image's own SBOM and of
// the other SBOMs in the attestations of the index at tag (BuildKit puts
// the image's first).
func spdxOf(t *testing.T, tag string) (image, others string) {
	t.Helper()
	var lists []string
	for _, raw := range statementsOf(t, tag) {
		var stmt struct {
			PredicateType string `json:"predicateType"`
			Predicate     struct {
				Packages []struct{ Name, VersionInfo string } `json:"packages"`
			} `json:"predicate"`
		}
		if err := json.Unmarshal([]byte(raw), &stmt); err != nil {
			t.Fatal(err)
		}
		if stmt.PredicateType != sbom.PredicateSPDX {
			continue
		}
		var names []string
		for _, p := range stmt.Predicate.Packages {
			names = append(names, p.Name+"@"+p.VersionInfo)
		}
		lists = append(lists, strings.Join(names, " "))
	}
	if len(lists) == 0 {
		t.Fatalf("no SPDX SBOM in %s", tag)
	}
	return lists[0], strings.Join(lists[1:], " ")
}
