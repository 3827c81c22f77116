package lamina

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/pipeline"
)

// InputsLabel is the image label recording a layer's inputs: its context,
// its workflow.ncl and its base's digest. A promoted layer whose label
// matches is not built again.
const InputsLabel = "dev.lian-build.lamina.inputs"

// Builder builds a catalog's layers through the shared pipeline: in DAG
// order, the layers of a level at once (up to Parallel), each on its base
// pinned by digest, verified by its probes, then promoted.
type Builder struct {
	Pipeline *pipeline.Pipeline
	// Base are the settings every layer build starts from: Registry is the
	// catalog's registry path (images at REGISTRY/lamina/<artifact>, cache
	// at REGISTRY/ci/lamina-<name>), insecure registries, progress.
	Base     frontdoor.Settings
	Registry cache.Registry
	Parallel int
	// Progress receives the builds' progress (nil: discarded).
	Progress io.Writer
	// Test builds and verifies without promoting or skipping: every layer
	// is built and stays on its staging tag (catalog test).
	Test bool
	// Events receives one event per layer, on <prefix>.lamina.build.completed
	// (or .failed); nil: none.
	Events pipeline.Publisher
}

// Status is what happened to a layer.
type Status string

const (
	Built   Status = "built"
	Skipped Status = "skipped"
	Failed  Status = "failed"
	Blocked Status = "blocked" // a base failed or was blocked
)

// LayerResult is one layer's line of the summary.
type LayerResult struct {
	Name        string    `json:"name"`
	Status      Status    `json:"status"`
	Why         string    `json:"why,omitempty"`
	Digest      string    `json:"digest,omitempty"`
	Tier        string    `json:"tier,omitempty"`
	StepsCached int       `json:"steps_cached"`
	StepsTotal  int       `json:"steps_total"`
	Verified    []string  `json:"verified,omitempty"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
}

// ref is where a layer's artifact lives.
func (b *Builder) ref(artifact string) string {
	return strings.TrimSuffix(b.Base.Registry, "/") + "/lamina/" + artifact
}

// Build builds the layers named (all when none) and the bases they need,
// level by level. The results follow the build order; err is the first
// failure's, when a layer failed.
func (b *Builder) Build(ctx context.Context, c *Catalog, only []string) ([]LayerResult, error) {
	if b.Base.Registry == "" {
		return nil, errors.New("catalog build needs the catalog's registry (--registry HOST[:PORT]/PREFIX)")
	}
	want, err := c.closure(only)
	if err != nil {
		return nil, err
	}
	results := map[string]*LayerResult{}
	var order []string
	var mu sync.Mutex
	for _, level := range c.Order() {
		sem := make(chan struct{}, max(b.Parallel, 1))
		var wg sync.WaitGroup
		for _, l := range level {
			if !want[l.Name] {
				continue
			}
			order = append(order, l.Name)
			mu.Lock()
			base := results[l.Base.Layer]
			mu.Unlock()
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				r := b.layer(ctx, l, base)
				b.publish(ctx, l, r)
				mu.Lock()
				results[l.Name] = &r
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	var out []LayerResult
	var errs []error
	for _, n := range order {
		r := *results[n]
		out = append(out, r)
		if r.Status == Failed {
			errs = append(errs, fmt.Errorf("layer %s: %s", n, r.Why))
		}
	}
	return out, errors.Join(errs...)
}

// publish sends the layer's event: the workspace is "lamina", so the
// subject is <prefix>.lamina.build.completed (built or skipped) or
// <prefix>.lamina.build.failed (failed or blocked).
func (b *Builder) publish(ctx context.Context, l *Layer, r LayerResult) {
	if b.Events == nil {
		return
	}
	name, outcome := pipeline.EventCompleted, pipeline.OutcomeSuccess
	if r.Status == Failed || r.Status == Blocked {
		name, outcome = pipeline.EventFailed, pipeline.OutcomeFailure
	}
	var tags []string
	for _, a := range l.Artifacts {
		tags = append(tags, b.ref(a))
	}
	res := pipeline.Result{BuildID: "lamina-" + l.Name, Workspace: "lamina-" + l.Name, Outcome: outcome, Tier: r.Tier,
		StepsTotal: r.StepsTotal, StepsCached: r.StepsCached, Digest: r.Digest, Tags: tags, Error: r.Why,
		StartedAt: r.Started, FinishedAt: r.Finished, DurationMS: r.Finished.Sub(r.Started).Milliseconds(), Attempts: []pipeline.Attempt{}}
	b.Events.Publish(ctx, pipeline.Event{SchemaVersion: pipeline.EventSchemaVersion, Name: name, BuildID: res.BuildID,
		Workspace: "lamina", Actor: "ci", Tier: r.Tier, SizingSource: "spec", Attempt: 1, StartedAt: r.Started, Time: time.Now().UTC(), Result: &res})
}

// closure is the layers named and every base they build on.
func (c *Catalog) closure(only []string) (map[string]bool, error) {
	want := map[string]bool{}
	if len(only) == 0 {
		for _, l := range c.Layers {
			want[l.Name] = true
		}
		return want, nil
	}
	for _, n := range only {
		l := c.Layer(n)
		if l == nil {
			return nil, fmt.Errorf("no layer %q in the catalog (layers: %s)", n, strings.Join(c.Names(), ", "))
		}
		for ; l != nil; l = c.Layer(l.Base.Layer) {
			want[l.Name] = true
		}
	}
	return want, nil
}

// layer builds one layer whose base (a catalog layer's result, or nil) is done.
func (b *Builder) layer(ctx context.Context, l *Layer, base *LayerResult) (r LayerResult) {
	r = LayerResult{Name: l.Name, Started: time.Now()}
	defer func() { r.Finished = time.Now() }()
	baseRef := l.Base.Image
	if l.Base.Layer != "" {
		if base == nil || base.Status == Failed || base.Status == Blocked {
			r.Status, r.Why = Blocked, "base layer "+l.Base.Layer+" did not build"
			return r
		}
		baseRef = b.ref(stagingTag(l.Base.Layer)) + "@" + base.Digest
	}
	inputs, err := inputsOf(l, baseRef)
	if err != nil {
		r.Status, r.Why = Failed, err.Error()
		return r
	}
	if digest, labels, err := b.Registry.ImageLabels(ctx, b.ref(l.Artifacts[0])); err == nil && labels[InputsLabel] == inputs && !b.Test {
		r.Status, r.Why, r.Digest = Skipped, "inputs unchanged since its last promotion", digest
		return r
	}
	res, err := b.run(ctx, l, baseRef, inputs)
	r.Tier, r.StepsCached, r.StepsTotal, r.Digest = res.Tier, res.StepsCached, res.StepsTotal, res.Digest
	if err != nil {
		r.Status, r.Why = Failed, "build: "+err.Error()
		return r
	}
	if r.Verified, err = b.verify(ctx, l, b.ref(stagingTag(l.Name))+"@"+res.Digest); err != nil {
		r.Status, r.Why = Failed, err.Error()
		return r
	}
	for _, a := range l.Artifacts {
		if b.Test {
			r.Why = "tested: left on " + b.ref(stagingTag(l.Name)) + ", not promoted"
			break
		}
		if err := b.Registry.Promote(ctx, cache.Promotion{From: b.ref(stagingTag(l.Name)) + "@" + res.Digest, To: b.ref(a)}); err != nil {
			r.Status, r.Why = Failed, err.Error()
			return r
		}
	}
	r.Status = Built
	return r
}

// stagingTag is where a layer is pushed before its probes pass.
func stagingTag(name string) string { return name + ":staging" }

// run builds the layer and pushes it to its staging tag.
func (b *Builder) run(ctx context.Context, l *Layer, baseRef, inputs string) (pipeline.Result, error) {
	s := b.Base
	s.Given = map[string]bool{}
	s.Context, s.File = filepath.Join(l.Dir, l.Context), filepath.Join(l.Dir, l.Context, l.Dockerfile)
	s.Tags, s.Push = []string{b.ref(stagingTag(l.Name))}, true
	s.Labels = append(append([]string(nil), s.Labels...), InputsLabel+"="+inputs)
	s.BuildArgs = append(append([]string(nil), s.BuildArgs...), l.BuildArgs...)
	if baseRef != "scratch" {
		s.BuildContexts = append(append([]string(nil), s.BuildContexts...), "base=docker-image://"+baseRef)
	}
	s.Workspace, s.Actor, s.RunnerType = "lamina-"+l.Name, "ci", l.RunnerType
	req, err := s.Request()
	if err != nil {
		return pipeline.Result{}, err
	}
	return b.Pipeline.Run(ctx, b.withProgress(req))
}

func (b *Builder) withProgress(req pipeline.Request) pipeline.Request {
	req.Build.ProgressOut = b.Progress
	if req.Build.ProgressOut == nil {
		req.Build.ProgressOut = io.Discard
	}
	return req
}

// verify runs every probe in the built image, one RUN each, so that a
// failure names its tool.
func (b *Builder) verify(ctx context.Context, l *Layer, image string) ([]string, error) {
	if len(l.Tools) == 0 {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "lian-probe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	df := "FROM base\n"
	for _, t := range l.Tools {
		df += "RUN " + t.Probe + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return nil, err
	}
	s := b.Base
	s.Given, s.Context, s.File, s.Tags, s.Push, s.Registry = map[string]bool{}, dir, "", nil, false, ""
	s.Workspace, s.NoCache = "lamina-"+l.Name+"-probe", true
	s.BuildContexts = []string{"base=docker-image://" + image}
	req, err := s.Request()
	if err != nil {
		return nil, err
	}
	if _, err := b.Pipeline.Run(ctx, b.withProgress(req)); err != nil {
		return nil, fmt.Errorf("probe failed: %v", err)
	}
	var verified []string
	for _, t := range l.Tools {
		verified = append(verified, t.Binary)
	}
	return verified, nil
}

// inputsOf hashes what a layer is made of: every file of its context, its
// workflow.ncl and its base.
func inputsOf(l *Layer, baseRef string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "base %s\n", baseRef)
	wf, err := os.ReadFile(l.File)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "workflow %x\n", sha256.Sum256(wf))
	root := filepath.Join(l.Dir, l.Context)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %o ", rel, info.Mode())
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		fmt.Fprintln(h)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", root, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
