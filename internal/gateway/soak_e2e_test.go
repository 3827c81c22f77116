package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/testenv"
)

// soakRun is the soak's record: what was sent and answered, and what the
// injector did.
type soakRun struct {
	mu        sync.Mutex
	sent      []burstDelivery
	accepted  map[string]int       // delivery → 202s
	firstOK   map[string]time.Time // delivery → when it was first accepted
	codes     map[int]int
	intake    []time.Duration
	faults    map[string]int
	injectLog []string
	// redeliveries are when the injector did what may make JetStream
	// deliver a running job again (at least once): a gateway replica
	// killed (SIGKILL) before it acknowledged a build it reported, or a
	// NATS node gone with a job's in-progress acknowledgement.
	redeliveries []time.Time
}

// The whole system for LIAN_SOAK (default 2 minutes) under steady load
// while faults arrive at random: webhooks (pushes and `/lian rebuild`
// comments, one in ten redelivered) into three gateway replicas that build
// on the pool (two replicas) over the fake Hetzner API, on a three-node
// JetStream cluster. The injector kills or stops a gateway replica, a NATS
// node or a pool replica and restarts it; kills a runner's buildkitd; cuts
// a runner's SSH sessions; fills a runner's memory; and switches the API's
// faults on (5xx, 429 with RateLimit-Reset, resource_unavailable, a slow
// boot, a server never reachable). At the end every accepted delivery is
// exactly one completed check run, every build's events are whole, and
// after a drain nothing is left; the replicas that ran throughout stay
// within a bound of their open files and memory after warm-up.
// `make soak DURATION=10m SEED=N` runs it longer; the seed reproduces the
// load's and the injector's choices.
func TestSystemSoak(t *testing.T) {
	duration, seed := testenv.SoakConfig(t, 2*time.Minute)
	t.Logf("system soak: %s, seed %d (LIAN_SOAK_SEED=%d reproduces the choices)", duration, seed, seed)
	s := startSystem(t)
	events := s.eventStream(t)
	sha := s.git.commit(t, map[string]string{"Dockerfile": soakDockerfile, "app.txt": "0\n"})
	s.gh.mu.Lock()
	s.gh.prHead, s.gh.permission["Codertocat"] = sha, "write"
	s.gh.mu.Unlock()
	r := &soakRun{accepted: map[string]int{}, firstOK: map[string]time.Time{}, codes: map[int]int{}, faults: map[string]int{}}
	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { r.load(ctx, t, s, rand.New(rand.NewPCG(seed, 1))) })
	wg.Go(func() { r.inject(ctx, s, rand.New(rand.NewPCG(seed, 2))) })
	time.Sleep(min(duration/4, 30*time.Second))
	baseline := s.usage()
	wg.Wait()
	completed := r.waitCompleted(t, s, 10*time.Minute)
	defer r.report(t, s)
	runs := r.checkRuns(t, s)
	r.checkEvents(t, s, events, completed, runs)
	end := s.usage()
	for name, u := range end {
		b, ok := baseline[name]
		if !ok {
			continue
		}
		t.Logf("%s after warm-up: %s; at the end: %s", name, b.Usage, u.Usage)
		if grown := u.Usage.Grown(b.Usage); grown != "" && u.pid == b.pid {
			t.Errorf("%s grew past its bound: %s", name, grown)
		}
	}
	s.drain(t)
}

// load sends a delivery every 1.5–4.5 s: seven in ten a push of a new
// commit, the rest a `/lian rebuild` comment on the PR (whose head is the
// newest commit); after one in ten, an earlier delivery again.
func (r *soakRun) load(ctx context.Context, t *testing.T, s *system, rng *rand.Rand) {
	client := &http.Client{Timeout: 10 * time.Second}
	for n := 1; ctx.Err() == nil; n++ {
		var d burstDelivery
		id := fmt.Sprintf("soak-%d", n)
		if rng.IntN(10) < 7 {
			sha := s.git.commit(t, map[string]string{"app.txt": fmt.Sprintf("%d\n", n)})
			s.gh.mu.Lock()
			s.gh.prHead = sha
			s.gh.mu.Unlock()
			d = burstDelivery{"push", id, sha, pushPayload(t, sha), true}
		} else {
			d = burstDelivery{"issue_comment", id, "", commentPayload(t, "/lian rebuild", nil), true}
		}
		r.post(client, s, rng, d)
		if rng.IntN(10) == 0 {
			r.mu.Lock()
			again := r.sent[rng.IntN(len(r.sent))]
			r.mu.Unlock()
			r.post(client, s, rng, again)
		}
		select {
		case <-ctx.Done():
		case <-time.After(1500*time.Millisecond + time.Duration(rng.IntN(3000))*time.Millisecond):
		}
	}
}

func (r *soakRun) post(client *http.Client, s *system, rng *rand.Rand, d burstDelivery) {
	code, took := postAny(client, s.gatewayURLs, rng.IntN(3), d)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, d)
	r.codes[code]++
	if code != 0 {
		r.intake = append(r.intake, took)
	}
	if code == http.StatusAccepted {
		if r.accepted[d.id]++; r.accepted[d.id] == 1 {
			r.firstOK[d.id] = time.Now()
		}
	}
}

// waitCompleted waits until every accepted delivery's build has a
// completed check run; it returns the builds' ids.
func (r *soakRun) waitCompleted(t *testing.T, s *system, limit time.Duration) map[string]bool {
	want := map[string]bool{}
	r.mu.Lock()
	for id := range r.accepted {
		want[BuildIDFor(id)] = true
	}
	r.mu.Unlock()
	deadline := time.Now().Add(limit)
	for {
		runs := s.runsByBuild()
		left := 0
		for b := range want {
			if br := runs[b]; br == nil || !br.completed { // nil: not taken off the queue yet
				left++
			}
		}
		if left == 0 {
			return want
		}
		if time.Now().After(deadline) {
			t.Errorf("%d of %d accepted builds have no completed check run after %s", left, len(want), limit)
			return want
		}
		time.Sleep(time.Second)
	}
}

// buildRuns are what the fake GitHub holds for one build.
type buildRuns struct {
	created, completions int
	completed            bool
	conclusion, title    string
	started, finished    time.Time // first in_progress, first completed
}

func (s *system) runsByBuild() map[string]*buildRuns {
	out := map[string]*buildRuns{}
	s.gh.mu.Lock()
	defer s.gh.mu.Unlock()
	for id, bodies := range s.gh.checkRuns {
		b, _ := bodies[0]["external_id"].(string)
		br := out[b]
		if br == nil {
			br = &buildRuns{}
			out[b] = br
		}
		br.created++
		for i, body := range bodies {
			at := s.gh.at[id][i]
			switch body["status"] {
			case "in_progress":
				if br.started.IsZero() {
					br.started = at
				}
			case "completed":
				br.completions++
				br.completed, br.conclusion = true, fmt.Sprint(body["conclusion"])
				if o, ok := body["output"].(map[string]any); ok {
					br.title = fmt.Sprint(o["title"])
					if _, e, ok := strings.Cut(fmt.Sprint(o["summary"]), "**Error:** "); ok {
						br.title += " — " + tail(strings.SplitN(e, "\n", 2)[0], 200)
					}
				}
				if br.finished.IsZero() {
					br.finished = at
				}
			}
		}
	}
	return out
}

// checkRuns: one check run per accepted delivery, completed once (a job
// JetStream delivers again while it runs waits for its hold), none for a
// delivery that was not accepted, none accepted twice.
func (r *soakRun) checkRuns(t *testing.T, s *system) map[string]*buildRuns {
	time.Sleep(3 * time.Second) // a second completion would show up now
	runs := s.runsByBuild()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.accepted {
		br := runs[BuildIDFor(id)]
		switch {
		case n != 1:
			t.Errorf("delivery %s accepted %d times", id, n)
		case br == nil:
			t.Errorf("delivery %s: no check run", id)
		case br.created != 1:
			t.Errorf("delivery %s: %d check runs", id, br.created)
		case br.completions > 1:
			t.Errorf("delivery %s: completed %d times", id, br.completions)
		}
	}
	for b := range runs {
		found := false
		for id := range r.accepted {
			found = found || BuildIDFor(id) == b
		}
		if !found {
			t.Errorf("check run for build %s, whose delivery was not accepted", b)
		}
	}
	return runs
}

// redeliveredDuring says whether the injector did what may redeliver a
// job while br's build ran (from its first progress to a second after its
// first completion).
func (r *soakRun) redeliveredDuring(br *buildRuns) bool {
	for _, k := range r.redeliveries {
		if !k.Before(br.started) && (br.finished.IsZero() || k.Before(br.finished.Add(time.Second))) {
			return true
		}
	}
	return false
}

// eventStream is a JetStream stream on the cluster that keeps every
// build's lifecycle events (three replicas, as an operator would keep them).
func (s *system) eventStream(t *testing.T) jetstream.Stream {
	js := s.jetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SOAK_EVENTS", Subjects: []string{"lian-build.*.build.*"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// jetStream is a new client of the cluster.
func (s *system) jetStream(t *testing.T) jetstream.JetStream {
	return testenv.JetStreamAt(t, s.nats.URL())
}

// checkEvents: every build whose check run completed has its started
// event and exactly one completed or failed (two only when a gateway or
// a NATS node died while it ran: at least once), and no event is of a
// build the soak did not cause.
func (r *soakRun) checkEvents(t *testing.T, s *system, st jetstream.Stream, builds map[string]bool, runs map[string]*buildRuns) {
	var seen map[string]map[string]int
	var err error
	// The cluster may still be electing leaders after the injector's last
	// restart: reading waits for it, a minute at most.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		if seen, err = readEvents(st); err == nil || time.Now().After(deadline) {
			break
		}
		t.Logf("reading the events: %v; again", err)
		// A new connection, perhaps to another node.
		if again, serr := s.jetStream(t).Stream(context.Background(), "SOAK_EVENTS"); serr == nil {
			st = again
		}
	}
	if err != nil {
		t.Errorf("reading the events: %v", err)
		return
	}
	for b := range builds {
		ev := seen[b]
		ends := ev[pipeline.EventCompleted] + ev[pipeline.EventFailed]
		if ev[pipeline.EventStarted] == 0 || ends != 1 && !(ends == 2 && runs[b] != nil && r.redeliveredDuring(runs[b])) {
			t.Errorf("build %s: events %v (want started, then completed or failed once)", b, ev)
		}
	}
	for b := range seen {
		if !builds[b] {
			t.Errorf("events of build %s, which no accepted delivery caused: %v", b, seen[b])
		}
	}
}

// readEvents counts the stream's events by build and name, reading each
// message by its sequence number (no consumer to create or keep).
func readEvents(st jetstream.Stream) (map[string]map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream info: %w", err)
	}
	seen := map[string]map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", seq, err)
		}
		var e pipeline.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			return nil, fmt.Errorf("event %s: %w", m.Subject, err)
		}
		if seen[e.BuildID] == nil {
			seen[e.BuildID] = map[string]int{}
		}
		seen[e.BuildID][e.Name]++
	}
	return seen, nil
}

// procUsage is one replica's usage and the process it was read from.
type procUsage struct {
	testenv.Usage
	pid  int
	addr string
}

// usage reads every running replica's open files and resident memory,
// and its goroutines as Prometheus last scraped them.
func (s *system) usage() map[string]procUsage {
	out := map[string]procUsage{}
	for _, p := range append(append([]*testenv.Process{}, s.gateways...), s.pools...) {
		if pid := p.Pid(); pid != 0 {
			if u, err := testenv.UsageOf(pid); err == nil {
				out[p.Name] = procUsage{u, pid, p.Addr}
			}
		}
	}
	time.Sleep(1100 * time.Millisecond) // a scrape of the processes as they are now
	for name, u := range out {
		if g, err := s.prom.Query(context.Background(), fmt.Sprintf(`go_goroutines{instance=%q}`, u.addr)); err == nil && len(g) == 1 {
			u.Goroutines = int(g[0].Value)
			out[name] = u
		}
	}
	return out
}

// drain stops the gateways, drains the pool and checks that nothing is
// left: no server, volume or key but the pool's own in the API, no runner
// host, network namespace, mount or loop device.
func (s *system) drain(t *testing.T) {
	for _, g := range s.gateways {
		g.Stop(syscall.SIGTERM)
	}
	client := &pool.Client{URL: s.poolURL(), Token: soakPoolToken}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		_, err := client.Drain(context.Background())
		vms, lerr := client.List(context.Background())
		if err == nil && lerr == nil && len(vms) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the pool does not drain: %v %v %+v", err, lerr, vms)
			break
		}
		time.Sleep(2 * time.Second)
	}
	if servers, keys := s.fake.Counts(); servers != 0 || keys != 1 || s.fake.Volumes() != 0 {
		t.Errorf("left in the API: %d servers, %d keys (want the pool's own), %d volumes", servers, keys, s.fake.Volumes())
	}
	if ids := s.hosts.IDs(); len(ids) != 0 {
		t.Errorf("runner hosts left: %v", ids)
	}
	testenv.AssertNoRunnerHosts(t, s.local)
	testenv.AssertNothingMountedUnder(t, s.hosts.Dir)
	testenv.AssertNothingMountedUnder(t, s.hosts.Options.StateDir)
}

// report prints what the soak did.
func (r *soakRun) report(t *testing.T, s *system) {
	runs := s.runsByBuild()
	r.mu.Lock()
	defer r.mu.Unlock()
	conclusions := map[string]int{}
	var waits, results []time.Duration
	var failed []string
	for id, at := range r.firstOK {
		br := runs[BuildIDFor(id)]
		if br == nil {
			continue
		}
		conclusions[br.conclusion]++
		if !br.started.IsZero() {
			waits = append(waits, br.started.Sub(at))
		}
		if !br.finished.IsZero() {
			results = append(results, br.finished.Sub(at))
		}
		if br.conclusion != "success" {
			failed = append(failed, fmt.Sprintf("%s %s: %s", id, br.conclusion, br.title))
		}
	}
	sort.Strings(failed)
	servers := 0
	for _, q := range s.fake.Requests() {
		if q.Method == "POST" && q.Path == "/servers" {
			servers++
		}
	}
	t.Logf("deliveries sent %d (answers %v), builds %d (check runs: %v; cancelled: superseded by a newer push), server creates tried %d",
		len(r.sent), r.codes, len(r.accepted), conclusions, servers)
	t.Logf("faults injected %v", r.faults)
	t.Logf("builds that did not succeed:\n%s", strings.Join(failed, "\n"))
	t.Logf("intake p50 %s p99 %s; queue wait (accepted → in progress) p50 %s p99 %s; time to result (accepted → completed) p50 %s p99 %s",
		quantile(r.intake, 0.5), quantile(r.intake, 0.99), quantile(waits, 0.5), quantile(waits, 0.99), quantile(results, 0.5), quantile(results, 0.99))
	t.Logf("the injector's log:\n%s", strings.Join(r.injectLog, "\n"))
	s.metricsReport(t)
}

// soakCounters are what the report reads from Prometheus: each counter's
// total over the run, across the replicas' restarts, summed by a label.
var soakCounters = []struct{ name, metric, by string }{
	{"builds by outcome", "lian_build_builds_total", "outcome"},
	{"job retries", "lian_build_job_retries_total", ""},
	{"dead letters by kind", "lian_build_jobs_dead_lettered_total", "kind"},
	{"queue op errors by op", "lian_build_queue_op_errors_total", "op"},
	{"redeliveries meeting a hold, by event", "lian_build_job_holds_total", "event"},
	{"OOM retries", "lian_build_oom_retries_total", ""},
	{"pool returns by outcome", "lian_build_pool_returns_total", "outcome"},
	{"pool warm leases by result", "lian_build_pool_warm_leases_total", "result"},
}

// metricsReport prints what the replicas' metrics say of the run, and the
// alerts that were pending or fired.
func (s *system) metricsReport(t *testing.T) {
	ctx := context.Background()
	for _, c := range soakCounters {
		series, err := s.prom.QueryRange(ctx, c.metric+"[2h]")
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		sums := map[string]float64{}
		for _, se := range series {
			sums[se.Metric[c.by]] += se.CounterTotal()
		}
		t.Logf("%s: %s", c.name, sortedCounts(sums))
	}
	alerts, err := s.prom.Query(ctx, `max by (alertname, alertstate) (max_over_time(ALERTS[2h]))`)
	if err != nil {
		t.Errorf("alerts: %v", err)
	}
	var fired []string
	for _, a := range alerts {
		fired = append(fired, a.Metric["alertname"]+" ("+a.Metric["alertstate"]+")")
	}
	sort.Strings(fired)
	t.Logf("alerts pending or fired: %d %v", len(fired), fired)
}

// sortedCounts prints counts by key, keys in order ("-": none counted).
func sortedCounts(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		if k == "" {
			k = "all"
		}
		parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(q*float64(len(s))))].Round(time.Millisecond)
}
