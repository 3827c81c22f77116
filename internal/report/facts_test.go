package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
)

func failedResult() pipeline.Result {
	return pipeline.Result{
		BuildID: "b1", Workspace: "app", Actor: "human:jpl", Provider: "local",
		Tier: "cax21", SizingSource: sizing.SourceDefault, SizingReason: "generic default",
		Outcome: pipeline.OutcomeFailure, OOMRetries: 1, StepsCached: 3, StepsTotal: 7, DurationMS: 12_345,
		Attempts: []pipeline.Attempt{
			{Number: 1, Tier: "cax11", Outcome: pipeline.OutcomeOOM, OOM: true, DurationMS: 4_000},
			{Number: 2, Tier: "cax21", Outcome: pipeline.OutcomeFailure, DurationMS: 8_000},
		},
		Usage:   &pipeline.Usage{Samples: 9, CPUP95: 1.5, MemP95Bytes: 300 << 20, MemPeak: 310 << 20},
		Failure: &buildkit.Failure{Step: "[build 3/4] RUN a | b", File: "Dockerfile", Line: 3, LogTail: []string{"boom"}},
		Error:   "process did not complete successfully: exit code: 1",
	}
}

func TestResultTable(t *testing.T) {
	r := failedResult()
	want := "| | |\n|---|---|\n" +
		"| Tier | cax21 after an OOM on cax11 (sized cax11 by default: generic default) |\n" +
		"| P95 suggestion | cax31 |\n" +
		"| Attempts | 1. cax11 oom in 4s, OOM → 2. cax21 failure in 8s |\n" +
		"| OOM retries | 1 |\n" +
		"| Cache hits | 3/7 steps cached |\n" +
		"| Duration | 12.3s |\n" +
		"| Usage | CPU p95 1.50 cores, memory p95 300.0 MiB (peak 310.0 MiB), 9 samples |\n" +
		"| Runner | local |\n" +
		"| Actor | `human:jpl` |\n" +
		"| Failed step | `[build 3/4] RUN a \\| b at Dockerfile:3` |\n"
	r.SizingSuggestion = "cax31"
	if got := Markdown(r); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	// Every row stays one table row: a newline, pipe or backtick in a value cannot break it.
	r.SizingReason = "line one\nline | two"
	r.Failure.Step = "RUN echo `x` | y"
	for _, l := range strings.Split(strings.TrimSpace(Markdown(r)), "\n") {
		if strings.Count(strings.ReplaceAll(l, `\|`, ""), "|") != 3 || strings.Count(l, "`")%2 != 0 {
			t.Errorf("row breaks the table: %q", l)
		}
	}
	r.Provider = ""
	if strings.Contains(Markdown(r), "| Runner |") {
		t.Error("a result without a provider still has a Runner row")
	}
}

// The text report and the table say the same things.
func TestReportAndTableShowTheSameFacts(t *testing.T) {
	r := failedResult()
	var b bytes.Buffer
	Write(&b, r)
	text := b.String()
	for _, f := range facts(r) {
		if !strings.Contains(text, f.value) {
			t.Errorf("text report lacks %s %q:\n%s", f.key, f.value, text)
		}
	}
	for _, w := range []string{"lian-build: build b1 failed", "  | boom", "error           process did not complete"} {
		if !strings.Contains(text, w) {
			t.Errorf("text report lacks %q:\n%s", w, text)
		}
	}
}

// A build split by architecture reports a row per leg — its tier, its
// attempts (the arm64 leg's OOM retry), cache hits, digest and server —
// and the index digest; text and Markdown say the same.
func TestLegRows(t *testing.T) {
	leg := func(tier string, attempts ...pipeline.Attempt) pipeline.Result {
		return pipeline.Result{Provider: "hcloud", Tier: tier, SizingSource: sizing.SourceDefault, Outcome: pipeline.OutcomeSuccess,
			StepsCached: 1, StepsTotal: 2, Digest: "sha256:" + tier, Attempts: attempts}
	}
	r := pipeline.Result{Outcome: pipeline.OutcomeSuccess, Digest: "sha256:index", Tags: []string{"r.io/app:1"}, DurationMS: 3_000, Actor: "ci",
		Legs: []pipeline.Leg{
			{Platforms: []string{"linux/amd64"}, Result: leg("cax11", pipeline.Attempt{Number: 1, Tier: "cax11", Outcome: pipeline.OutcomeSuccess, DurationMS: 2_000})},
			{Platforms: []string{"linux/arm64"}, Result: leg("cax21", pipeline.Attempt{Number: 1, Tier: "cax11", Outcome: pipeline.OutcomeOOM, OOM: true, DurationMS: 500},
				pipeline.Attempt{Number: 2, Tier: "cax21", Outcome: pipeline.OutcomeSuccess, DurationMS: 2_500})},
		}}
	md := Markdown(r)
	for _, want := range []string{
		"| linux/amd64 | cax11 (default) · cax11 success in 2s · 1/2 steps cached · sha256:cax11 · hcloud |",
		"| linux/arm64 | cax21 (default) · cax11 oom in 500ms, OOM → cax21 success in 2.5s · 1/2 steps cached · sha256:cax21 · hcloud |",
		"| Index | `sha256:index` |", "| Tags | `r.io/app:1` |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	var b bytes.Buffer
	Write(&b, r)
	for _, want := range []string{"linux/arm64", "cax11 oom in 500ms, OOM → cax21 success", "sha256:index"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
}

// What was attested and signed is in the report: each platform's SBOM
// package count, the extra scans, the key and the index's signature.
func TestSupplyChainFacts(t *testing.T) {
	r := pipeline.Result{Outcome: pipeline.OutcomeSuccess, Digest: "sha256:aa", Provenance: "max",
		Attestations: []buildkit.Attestation{
			{Platform: "linux/amd64", Digest: "sha256:01", Packages: 93, Scans: 2},
			{Platform: "linux/arm64", Digest: "sha256:02", Packages: 91, Scans: 1},
		},
		Signed: []string{"sha256:aa", "sha256:bb"}, SignedBy: "0123456789abcdef", Signatures: []string{"sha256:cc", "sha256:dd"}}
	var b strings.Builder
	Write(&b, r)
	for _, want := range []string{"SLSA v1, mode=max", "SPDX, 93 packages (linux/amd64), 91 packages (linux/arm64), and 1 scans of the context or stages",
		"2 manifests (cosign, key 0123456789abcdef), signature sha256:cc"} {
		if !strings.Contains(b.String(), want) || !strings.Contains(Markdown(r), want) {
			t.Errorf("the report lacks %q:\n%s\n%s", want, b.String(), Markdown(r))
		}
	}
	r.Attestations = []buildkit.Attestation{{Platform: "linux/amd64", Packages: -1, Scans: 0}}
	b.Reset()
	if Write(&b, r); strings.Contains(b.String(), "SPDX") {
		t.Errorf("an image without an SBOM reports one:\n%s", b.String())
	}
}

// The runner row names the machine's kernel and cgroup version when the
// provider found them.
func TestRunnerRowNamesKernelAndCgroup(t *testing.T) {
	r := failedResult()
	r.Provider = "hcloud"
	r.Attempts[1].SpawnMS = 74_066
	r.Attempts[1].Runner = &compute.RunnerInfo{Server: "lb-1 (id 7)", Type: "cpx21", Location: "fsn1", Kernel: "6.1.0-50-cloud-amd64", CgroupVersion: 2,
		Spawn: compute.SpawnTimes{CreateMS: 68, BootMS: 48_350, ReadyMS: 25_646}}
	want := "| Runner | hcloud · lb-1 (id 7) · cpx21 · fsn1 · Linux 6.1.0-50-cloud-amd64, cgroup v2; spawn 1m14.1s (create 100ms, boot 48.4s, ready 25.6s) |"
	if got := Markdown(r); !strings.Contains(got, want) {
		t.Errorf("table:\n%s\nwant the row:\n%s", got, want)
	}
	r.Attempts[1].Runner.Kernel = ""
	if got := Markdown(r); strings.Contains(got, "cgroup v") {
		t.Errorf("a runner without a known kernel:\n%s", got)
	}
}

// The context row says how a remote runner's context crossed: one stream
// or several (compressed or not), or why through the session; nothing for a build
// that went through the session as asked, or read no context.
func TestContextRow(t *testing.T) {
	r := pipeline.Result{Provider: "hcloud", Attempts: []pipeline.Attempt{{Number: 1}}}
	cases := []struct {
		cs   *buildkit.ContextStream
		want string
	}{
		{nil, ""},
		{&buildkit.ContextStream{}, ""},
		{&buildkit.ContextStream{Bytes: 3 << 20, TarBytes: 12 << 20}, "| Context | one stream: 12.0 MiB, 3.0 MiB sent (zstd) |"},
		{&buildkit.ContextStream{Bytes: 5 << 20, TarBytes: 5 << 20}, "| Context | one stream: 5.0 MiB |"},
		{&buildkit.ContextStream{Bytes: 30 << 20, TarBytes: 120 << 20, Parts: 4}, "| Context | 4 streams: 120.0 MiB, 30.0 MiB sent (zstd) |"},
		{&buildkit.ContextStream{Bytes: 50 << 20, TarBytes: 50 << 20, Parts: 3}, "| Context | 3 streams: 50.0 MiB |"},
		{&buildkit.ContextStream{Note: "the context went through the session: lb-1: a pool lease's key forwards no port"},
			"| Context | the context went through the session: lb-1: a pool lease's key forwards no port |"},
	}
	for _, c := range cases {
		r.Attempts[0].ContextStream = c.cs
		got := Markdown(r)
		if c.want == "" && strings.Contains(got, "Context") || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%+v:\n%s\nwant %q", c.cs, got, c.want)
		}
	}
}
