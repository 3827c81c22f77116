package report

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/pipeline"
)

// fact is one line of a build's report. The CLI and the Woodpecker log print
// facts as text (Write); the Action's job summary and the check run show
// them as a Markdown table (Markdown): one list, so the surfaces say the same.
type fact struct {
	key, value string
	code       bool // a literal (digest, tags, actor, step): a code span in Markdown
}

// firstTier is the tier the build was sized to (its first attempt's).
func firstTier(r pipeline.Result) string {
	if len(r.Attempts) == 0 {
		return ""
	}
	return r.Attempts[0].Tier
}

// facts are what every report of a finished build says, in order.
func facts(r pipeline.Result) []fact {
	if len(r.Legs) > 0 {
		return legFacts(r)
	}
	var out []fact
	add := func(k, v string, code bool) { out = append(out, fact{k, v, code}) }
	if r.Tier != "" {
		if first := firstTier(r); first != "" && first != r.Tier {
			add("tier", fmt.Sprintf("%s after an OOM on %s (sized %s by %s: %s)", r.Tier, first, first, r.SizingSource, r.SizingReason), false)
		} else {
			add("tier", fmt.Sprintf("%s (%s: %s)", r.Tier, r.SizingSource, r.SizingReason), false)
		}
	}
	if r.SizingSuggestion != "" {
		add("P95 suggestion", r.SizingSuggestion, false)
	}
	if len(r.Emulated) > 0 {
		add("emulated", strings.Join(r.Emulated, ", ")+" through QEMU on the runner (--emulate-platforms)", false)
	}
	if len(r.Attempts) > 0 {
		add("attempts", attempts(r.Attempts, true), false)
		add("OOM retries", strconv.Itoa(r.OOMRetries), false)
		add("cache hits", fmt.Sprintf("%d/%d steps cached", r.StepsCached, r.StepsTotal), false)
	}
	add("duration", Duration(r.DurationMS), false)
	if r.Digest != "" {
		add("digest", r.Digest, true)
	}
	if len(r.Tags) > 0 {
		add("tags", strings.Join(r.Tags, ", "), true)
	}
	if r.CostEUR > 0 {
		add("cost", costText(r), false)
	}
	if r.Provenance != "" && r.Digest != "" {
		add("provenance", "SLSA v1, mode="+r.Provenance, false)
	}
	out = append(out, supplyChainFacts(r)...)
	if u := r.Usage; u != nil {
		add("usage", fmt.Sprintf("CPU p95 %.2f cores, memory p95 %s (peak %s), %d samples", u.CPUP95, Bytes(u.MemP95Bytes), Bytes(u.MemPeak), u.Samples), false)
	}
	if r.Provider != "" {
		add("runner", runnerFact(r), false)
	}
	if v := contextFact(r); v != "" {
		add("context", v, false)
	}
	if r.State != nil {
		add("state", r.State.Line(), false)
	}
	if r.Actor != "" {
		add("actor", r.Actor, true)
	}
	if f := r.Failure; f != nil && f.Step != "" {
		v := f.Step
		if f.File != "" {
			v += fmt.Sprintf(" at %s:%d", f.File, f.Line)
		}
		add("failed step", v, true)
	}
	return out
}

// Markdown is the Markdown table of a finished build that GitHub shows (the
// Action's job summary, the gateway's check run): the facts Write prints.
// Cells are escaped for the table; the caller adds headings, log tails and its
// surface's limits.
func Markdown(r pipeline.Result) string {
	var b strings.Builder
	b.WriteString("| | |\n|---|---|\n")
	for _, f := range facts(r) {
		v := strings.ReplaceAll(strings.ReplaceAll(f.value, "|", "\\|"), "\n", " ")
		if f.code {
			v = "`" + strings.ReplaceAll(v, "`", "'") + "`"
		}
		k := f.key
		if !strings.Contains(k, "/") { // a leg's platforms stay as they are written
			k = strings.ToUpper(k[:1]) + k[1:]
		}
		fmt.Fprintf(&b, "| %s | %s |\n", k, v)
	}
	return b.String()
}

// runnerFact names the provider and, when known, the last attempt's machine
// and how long its spawn took (create, boot, ready).
func runnerFact(r pipeline.Result) string {
	if len(r.Attempts) == 0 || r.Attempts[len(r.Attempts)-1].Runner == nil {
		return r.Provider
	}
	a := r.Attempts[len(r.Attempts)-1]
	i := a.Runner
	parts := []string{r.Provider}
	for _, p := range []string{i.Server, i.Type, i.Location} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if i.Kernel != "" {
		parts = append(parts, fmt.Sprintf("Linux %s, cgroup v%d", i.Kernel, i.CgroupVersion))
	}
	sp := i.Spawn
	return fmt.Sprintf("%s; spawn %s (create %s, boot %s, ready %s)", strings.Join(parts, " · "), Duration(a.SpawnMS), Duration(sp.CreateMS), Duration(sp.BootMS), Duration(sp.ReadyMS))
}

// contextFact says how the last attempt's context crossed to a remote
// runner: as one stream or several (its size, and on the wire), or why through the
// session; "" when it went through the session as asked, or the build read
// none of it.
func contextFact(r pipeline.Result) string {
	if len(r.Attempts) == 0 {
		return ""
	}
	cs := r.Attempts[len(r.Attempts)-1].ContextStream
	switch {
	case cs == nil:
		return ""
	case cs.Note != "":
		return cs.Note
	case cs.Bytes == 0:
		return ""
	}
	how := "one stream"
	if cs.Parts > 1 {
		how = fmt.Sprintf("%d streams", cs.Parts)
	}
	if cs.TarBytes > cs.Bytes {
		return fmt.Sprintf("%s: %s, %s sent (zstd)", how, Bytes(uint64(cs.TarBytes)), Bytes(uint64(cs.Bytes)))
	}
	return how + ": " + Bytes(uint64(cs.Bytes))
}

// legFacts are the report of a build split by architecture: a row per leg
// (its platforms: tier, attempts, cache hits, digest, runner), then the
// image index and what every report says.
func legFacts(r pipeline.Result) []fact {
	var out []fact
	for _, l := range r.Legs {
		lr := l.Result
		parts := []string{}
		if lr.Tier != "" {
			parts = append(parts, fmt.Sprintf("%s (%s)", lr.Tier, lr.SizingSource))
		}
		if len(lr.Attempts) > 0 {
			parts = append(parts, attempts(lr.Attempts, false), fmt.Sprintf("%d/%d steps cached", lr.StepsCached, lr.StepsTotal))
		}
		if lr.Error != "" && lr.Outcome != pipeline.OutcomeSuccess {
			parts = append(parts, string(lr.Outcome)+": "+firstLine(lr.Error))
		}
		if lr.Digest != "" {
			parts = append(parts, lr.Digest)
		}
		if lr.Provider != "" {
			parts = append(parts, runnerFact(lr))
		}
		if lr.CostEUR > 0 {
			parts = append(parts, fmt.Sprintf("€%.4f", lr.CostEUR))
		}
		out = append(out, fact{strings.Join(l.Platforms, ", "), strings.Join(parts, " · "), false})
	}
	out = append(out, fact{"duration", Duration(r.DurationMS), false})
	if r.CostEUR > 0 {
		out = append(out, fact{"cost", fmt.Sprintf("€%.4f net, %d runners", r.CostEUR, len(r.Legs)), false})
	}
	if r.Digest != "" {
		out = append(out, fact{"index", r.Digest, true})
	}
	if len(r.Tags) > 0 {
		out = append(out, fact{"tags", strings.Join(r.Tags, ", "), true})
	}
	if p := r.Legs[0].Result.Provenance; p != "" && r.Digest != "" {
		out = append(out, fact{"provenance", "SLSA v1, mode=" + p + ", per platform", false})
	}
	out = append(out, supplyChainFacts(r)...)
	if r.Actor != "" {
		out = append(out, fact{"actor", r.Actor, true})
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// supplyChainFacts say what the pushed image's SBOMs list and what was
// signed, with which key, and where the image's own signature is.
func supplyChainFacts(r pipeline.Result) []fact {
	var out []fact
	var sboms []string
	extra := 0
	for _, a := range r.Attestations {
		if a.Packages >= 0 {
			sboms = append(sboms, strings.TrimSpace(fmt.Sprintf("%d packages %s", a.Packages, parenthesized(a.Platform))))
			extra += a.Scans - 1
		}
	}
	if len(sboms) > 0 {
		text := "SPDX, " + strings.Join(sboms, ", ")
		if extra > 0 {
			text += fmt.Sprintf(", and %d scans of the context or stages", extra)
		}
		out = append(out, fact{"SBOM", text, false})
	}
	if len(r.Signed) > 0 {
		text := fmt.Sprintf("%d manifests (cosign, key %s)", len(r.Signed), r.SignedBy)
		if len(r.Signatures) > 0 {
			text += ", signature " + r.Signatures[0]
		}
		out = append(out, fact{"signed", text, false})
	}
	return out
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

// costText is a build's cost and how it came about: the machines' list
// price and how the provider bills them.
func costText(r pipeline.Result) string {
	var how []string
	for _, a := range r.Attempts {
		if a.Runner == nil || a.Runner.Price == nil {
			continue
		}
		p := a.Runner.Price
		billing := "every started hour"
		if p.Billing == compute.ShareOfHour {
			billing = "its share of the hour"
		}
		how = append(how, fmt.Sprintf("%s in %s at €%.4f/h, %s", a.Runner.Type, a.Runner.Location, p.HourlyEUR, billing))
	}
	text := fmt.Sprintf("€%.4f net", r.CostEUR)
	if len(how) > 0 {
		text += " (" + strings.Join(how, "; ") + ")"
	}
	return text
}

// attempts says each attempt's tier, outcome and time, in order
// (numbered: "1. cax11 oom in 4s, OOM → 2. cax21 success in 8s").
func attempts(as []pipeline.Attempt, numbered bool) string {
	var out []string
	for _, a := range as {
		text := fmt.Sprintf("%s %s in %s", a.Tier, a.Outcome, Duration(a.DurationMS))
		if numbered {
			text = fmt.Sprintf("%d. %s", a.Number, text)
		}
		if a.OOM {
			text += ", OOM"
		}
		out = append(out, text)
	}
	return strings.Join(out, " → ")
}
