package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/platforms"
)

// split decides the build's legs from its platforms and the provider's
// native architectures; a refused platform is an input error naming the
// setting.
func split(s frontdoor.Settings, req pipeline.Request) ([]platforms.Leg, error) {
	legs, err := platforms.Split(platforms.Input{Platforms: req.Build.Platforms, Provider: s.ProviderName(),
		Native: compute.FeaturesOf(s.ProviderName()).Archs, Emulate: s.EmulatePlatforms})
	var se *platforms.SplitError
	if errors.As(err, &se) {
		return nil, s.Renamed(&buildkit.InputError{Field: "platforms", Value: se.Platform, Msg: strings.TrimPrefix(se.Error(), se.Platform+": ")})
	}
	return legs, err
}

// checkLegs refuses what a build split over runners cannot do: its result
// is an image index in a registry, so it pushes tags and has no other output.
func checkLegs(s frontdoor.Settings, req pipeline.Request) error {
	if !req.Build.Push || len(req.Build.Tags) == 0 || len(req.Build.Outputs) > 0 {
		return s.Renamed(&buildkit.InputError{Field: "platforms", Value: strings.Join(req.Build.Platforms, ","),
			Msg: "a build on one runner per architecture pushes one image index: give -t and --push, and no --output (or one platform per build)"})
	}
	return nil
}

// buildLegs runs one runner per architecture at once, each pushing its
// platforms' image by digest, then writes one image index under the
// build's tags. A leg that fails stops the others; nothing is tagged
// unless every leg succeeded; every runner is destroyed (or returned) by
// its own pipeline in every outcome.
func buildLegs(ctx context.Context, s frontdoor.Settings, req pipeline.Request, legs []platforms.Leg, o BuildOptions) (pipeline.Result, error) {
	if err := checkLegs(s, req); err != nil {
		return pipeline.Result{}, err
	}
	if req.BuildID == "" {
		req.BuildID = pipeline.NewBuildID()
	}
	res := pipeline.Result{BuildID: req.BuildID, Workspace: req.Workspace, Provider: s.ProviderName(), StartedAt: time.Now(), Tags: req.Build.Tags, Actor: req.Actor.String()}
	if o.Starting != nil {
		o.Starting()
	}
	lctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	results := make([]pipeline.Result, len(legs))
	errs := make([]error, len(legs))
	out := &lineWriter{w: o.Progress}
	var wg sync.WaitGroup
	for i, leg := range legs {
		wg.Go(func() {
			results[i], errs[i] = runLeg(lctx, s, legRequest(req, leg), o.Logger, out.prefixed("["+leg.Name()+"] "))
			if errs[i] != nil {
				stop(fmt.Errorf("the %s leg failed", leg.Name()))
			}
		})
	}
	wg.Wait()
	for i, leg := range legs {
		res.Legs = append(res.Legs, pipeline.Leg{Platforms: leg.Platforms, Result: results[i]})
	}
	sumLegs(&res)
	if err := firstLegError(legs, errs); err != nil {
		res.Outcome, res.Error, res.FinishedAt = legOutcome(results, errs), err.Error(), time.Now()
		res.DurationMS = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
		return res, err
	}
	digest, err := registryOf(req).WriteIndex(ctx, legRefs(req, results), req.Build.Tags)
	res.FinishedAt = time.Now()
	res.DurationMS = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	if err != nil {
		res.Outcome, res.Error = pipeline.OutcomeError, err.Error()
		return res, err
	}
	res.Outcome, res.Digest = pipeline.OutcomeSuccess, digest
	return res, nil
}

// legRequest is the request of one leg: its platforms, its own build id
// and workspace (so its cache namespace, warm state and P95 history are
// its architecture's), pushed by digest to the tags' repositories.
func legRequest(req pipeline.Request, leg platforms.Leg) pipeline.Request {
	r := req
	r.BuildID = req.BuildID + "-" + leg.Name()
	r.Workspace = req.Workspace + "-" + leg.Name()
	r.Build.Platforms = leg.Platforms
	r.Build.Tags = repositories(req.Build.Tags)
	r.Build.PushByDigest = true
	if r.Build.Progress == "auto" || r.Build.Progress == "tty" || r.Build.Progress == "" {
		r.Build.Progress = "plain" // two displays on one terminal would overwrite each other
	}
	return r
}

// runLeg opens a runtime for the leg's architecture and runs it.
func runLeg(ctx context.Context, s frontdoor.Settings, req pipeline.Request, log *slog.Logger, progress io.Writer) (pipeline.Result, error) {
	s.Platforms = req.Build.Platforms // the provider's machines: the leg's architecture
	if log != nil {
		log = log.With("platforms", strings.Join(req.Build.Platforms, ","))
	}
	rt, err := Open(ctx, s, log)
	if err != nil {
		return pipeline.Result{Workspace: req.Workspace, Outcome: pipeline.OutcomeError, Error: err.Error()}, err
	}
	defer rt.Close()
	return rt.run(ctx, req, BuildOptions{Progress: progress})
}

// repositories are the tags without their tag: where a leg pushes by digest.
func repositories(tags []string) []string {
	var out []string
	for _, t := range tags {
		if n, err := reference.ParseNormalizedNamed(t); err == nil {
			repo := n.Name()
			if !slices.Contains(out, repo) {
				out = append(out, repo)
			}
		}
	}
	return out
}

// legRefs are the legs' pushed manifests, REPOSITORY@DIGEST.
func legRefs(req pipeline.Request, results []pipeline.Result) []string {
	repo := repositories(req.Build.Tags)[0]
	var out []string
	for _, r := range results {
		out = append(out, repo+"@"+r.Digest)
	}
	return out
}

// registryOf is the registry access of what the build pushed, with its
// credentials and plain-HTTP hosts.
func registryOf(req pipeline.Request) platforms.Registry {
	return platforms.Registry{Auth: req.Build.RegistryAuth, Insecure: req.Build.InsecureRegistries}
}

// firstLegError is the error of the leg that failed first on its own (not
// stopped because another failed), named by its platforms.
func firstLegError(legs []platforms.Leg, errs []error) error {
	var stopped error
	for i, err := range errs {
		if err == nil {
			continue
		}
		named := fmt.Errorf("%s: %w", strings.Join(legs[i].Platforms, ","), err)
		if !errors.Is(err, pipeline.ErrCanceled) {
			return named
		}
		if stopped == nil {
			stopped = named
		}
	}
	return stopped
}

// legOutcome is the build's outcome from its legs': the first leg's own failure.
func legOutcome(results []pipeline.Result, errs []error) pipeline.Outcome {
	out := pipeline.OutcomeFailure
	for i, r := range results {
		if errs[i] != nil && !errors.Is(errs[i], pipeline.ErrCanceled) && r.Outcome != "" {
			return r.Outcome
		}
	}
	return out
}

// sumLegs fills the build's totals from its legs: attempts, retries,
// steps, the tier and sizing of the first leg (each leg's are in its row).
func sumLegs(res *pipeline.Result) {
	for i, l := range res.Legs {
		r := l.Result
		if i == 0 {
			res.Tier, res.SizingSource, res.SizingReason = r.Tier, r.SizingSource, r.SizingReason
		}
		res.Attempts = append(res.Attempts, r.Attempts...)
		res.OOMRetries += r.OOMRetries
		res.CostEUR += r.CostEUR
		res.StepsTotal += r.StepsTotal
		res.StepsCached += r.StepsCached
		res.StepsCacheable += r.StepsCacheable
		res.CacheImports = append(res.CacheImports, r.CacheImports...)
		res.CacheExports = append(res.CacheExports, r.CacheExports...)
		if res.Failure == nil && r.Failure != nil {
			res.Failure = r.Failure
		}
	}
}

// lineWriter writes whole lines of several legs' progress to one writer,
// each line prefixed with its leg.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) prefixed(prefix string) io.Writer {
	if l.w == nil {
		return nil
	}
	return &prefixWriter{l: l, prefix: prefix}
}

type prefixWriter struct {
	l      *lineWriter
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.l.mu.Lock()
		_, err := io.WriteString(p.l.w, p.prefix+string(p.buf[:i+1]))
		p.l.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}
