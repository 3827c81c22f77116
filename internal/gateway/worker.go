package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/lian-build/action/internal/checks"
	"github.com/lian-build/action/internal/githubapp"
	"github.com/lian-build/action/internal/natsjs"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
	"github.com/nats-io/nats.go/jetstream"
)

// GitHub is what the worker asks of GitHub (githubapp.App in production, an
// httptest fake API in tests — the same client either way).
type GitHub interface {
	CreateCheckRun(ctx context.Context, inst int64, owner, repo string, cr githubapp.CheckRun) (int64, error)
	CheckRunCompleted(ctx context.Context, inst int64, owner, repo string, id int64) (bool, error)
	UpdateCheckRun(ctx context.Context, inst int64, owner, repo string, id int64, cr githubapp.CheckRun) error
	PullRequestHead(ctx context.Context, inst int64, owner, repo string, n int) (string, bool, error)
	Permission(ctx context.Context, inst int64, owner, repo, user string) (string, error)
	React(ctx context.Context, inst int64, owner, repo string, commentID int64, content string) error
	Comment(ctx context.Context, inst int64, owner, repo string, n int, body string) error
	Token(ctx context.Context, inst int64) (string, error)
}

// Executor fetches a job's source and builds it.
type Executor interface {
	Execute(ctx context.Context, job Job, progress io.Writer) (pipeline.Result, error)
}

// Worker takes jobs off the queue.
type Worker struct {
	Queue         *Queue
	GitHub        GitHub
	Exec          Executor
	Concurrency   int
	Table         sizing.Table
	ProgressEvery time.Duration
	Log           *slog.Logger
	Metrics       *Metrics

	mu       sync.Mutex
	branches map[string]context.CancelCauseFunc
}

var errSuperseded = errors.New("superseded by a newer push to the same branch")

// Run processes jobs until ctx ends; then it stops fetching, cancels what is
// running (the pipeline destroys the runners) and leaves those jobs to be
// redelivered (durable queue), and returns when they have stopped.
func (w *Worker) Run(ctx context.Context) error {
	if w.Concurrency <= 0 {
		w.Concurrency = 2
	}
	if w.ProgressEvery <= 0 {
		w.ProgressEvery = 10 * time.Second
	}
	slots := make(chan struct{}, w.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case slots <- struct{}{}:
		}
		batch, err := w.Queue.Fetch(ctx, time.Second)
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			w.Log.Warn("fetching jobs", "err", err)
			time.Sleep(time.Second)
			continue
		}
		got := false
		for msg := range batch.Messages() {
			got = true
			wg.Add(1)
			go func(msg jetstream.Msg) {
				defer wg.Done()
				defer func() { <-slots }()
				w.handle(ctx, msg)
			}(msg)
		}
		if !got {
			<-slots
		}
	}
}

func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	var job Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		w.Log.Error("unreadable job; dropped", "err", err)
		w.Metrics.DeadLetter("unreadable")
		w.ack(w.Log, "term", msg.Term())
		return
	}
	log := w.Log.With("delivery_id", job.DeliveryID, "build_id", job.BuildID, "repo", job.Owner+"/"+job.Repo)
	// The intake records a delivery after queuing its job, and answers 202
	// when only the record failed: a redelivery after the stream's duplicate
	// window would queue the job again. Recorded here, it is a duplicate.
	// (Bounded well within the ack wait: nothing renews the delivery yet.)
	rctx, cancel := context.WithTimeout(ctx, natsjs.TryTimeout)
	err := w.Queue.Accept(rctx, job.DeliveryID)
	cancel()
	if err != nil && !errors.Is(err, ErrDuplicate) {
		log.Warn("recording the job's delivery", "err", err)
	}
	st, _, err := w.Queue.State(ctx, job.BuildID)
	if err != nil {
		log.Warn("reading build state; retried", "err", err)
		w.ack(log, "nak", msg.NakWithDelay(w.Queue.retry.delay(1)))
		return
	}
	// Deliveries that ended in a graceful requeue (shutdown) do not count:
	// what is left are attempts that failed or died with their worker.
	attempts := delivered(msg) - st.Requeues
	if w.Queue.retry.exhausted(attempts) {
		w.bury(ctx, log, msg, job, st, attempts-1)
		return
	}
	h := w.Queue.newHold(job.BuildID, w.Queue.ackWait)
	hctx, lose := context.WithCancelCause(ctx)
	defer lose(nil)
	stop := w.heartbeat(hctx, log, msg, h, lose)
	st, err = w.await(hctx, log, h, job.BuildID)
	if err != nil {
		stop()
		w.release(ctx, log, h)
		log.Warn("claiming the build; retried", "err", err)
		w.ack(log, "nak", msg.NakWithDelay(w.Queue.retry.delay(1)))
		return
	}
	done := w.Metrics.Started(queueWait(msg))
	err = w.process(hctx, log, job, st, h)
	done()
	stop()
	w.settle(ctx, log, msg, job, h, attempts, err, context.Cause(hctx))
}

// settle acknowledges a delivery after its job ran: done, requeued at
// shutdown, retried or buried after a failure — or left alone when its hold
// was lost: the job is then another delivery's.
func (w *Worker) settle(ctx context.Context, log *slog.Logger, msg jetstream.Msg, job Job, h *hold, attempts uint64, err, cause error) {
	if ctx.Err() == nil && (errors.Is(cause, errHoldLost) || errors.Is(err, errHoldLost)) {
		log.Warn("the build's hold ran out; its result is left to the worker holding it now, or to the job's next delivery", "err", err)
		w.Metrics.Hold("lost")
		return
	}
	w.release(ctx, log, h)
	switch {
	case err == nil:
		w.ack(log, "ack", msg.Ack())
	case ctx.Err() != nil:
		// Shutting down: requeue now rather than after AckWait.
		log.Info("requeued at shutdown")
		w.noteRequeue(context.WithoutCancel(ctx), job.BuildID)
		w.ack(log, "nak", msg.Nak())
	default:
		w.noteFailure(ctx, job.BuildID, err)
		if w.Queue.retry.exhausted(attempts + 1) {
			if st, _, serr := w.Queue.State(ctx, job.BuildID); serr == nil {
				w.bury(ctx, log, msg, job, st, attempts)
				return
			}
		}
		delay := w.Queue.retry.delay(attempts)
		log.Error("job failed; will be retried", "err", err, "attempt", attempts, "of", w.Queue.retry.MaxAttempts, "retry_in", delay)
		w.Metrics.Retry()
		w.ack(log, "nak", msg.NakWithDelay(delay))
	}
}

// await claims the build's hold for this delivery, waiting while another
// delivery holds it, and reads the build's state once it holds it. A build
// its holder finished meanwhile comes back done, unclaimed.
func (w *Worker) await(ctx context.Context, log *slog.Logger, h *hold, buildID string) (BuildState, error) {
	every := min(max(h.ttl/10, 50*time.Millisecond), time.Second)
	waited := false
	for {
		tookOver, err := h.claim(ctx)
		var held *heldError
		if !errors.As(err, &held) {
			if err != nil {
				return BuildState{}, err
			}
			if tookOver {
				log.Warn("took the build over from a worker that stopped renewing its hold")
				w.Metrics.Hold("taken_over")
			}
			st, _, err := w.Queue.State(ctx, buildID)
			return st, err
		}
		if st, _, err := w.Queue.State(ctx, buildID); err == nil && st.Done {
			return st, nil
		}
		if !waited {
			waited = true
			log.Info("another worker is running this build; waiting for it", "holder", held.Holder, "until", held.Until)
			w.Metrics.Hold("waited")
		}
		select {
		case <-ctx.Done():
			return BuildState{}, context.Cause(ctx)
		case <-time.After(every):
		}
	}
}

// release gives the delivery's hold up; one left behind only delays the
// job's next delivery until it runs out.
func (w *Worker) release(ctx context.Context, log *slog.Logger, h *hold) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.release(ctx); err != nil {
		log.Warn("releasing the build's hold", "err", err)
		w.Metrics.QueueOpError("release")
	}
}

// ack records an acknowledgement the queue refused: the job then comes back
// after AckWait (or stays acknowledged), which the log and the counter show.
func (w *Worker) ack(log *slog.Logger, op string, err error) {
	if err != nil {
		log.Warn("queue "+op+" failed", "err", err)
		w.Metrics.QueueOpError(op)
	}
}

// queueWait is how long msg waited in the stream before this delivery.
func queueWait(msg jetstream.Msg) time.Duration {
	md, err := msg.Metadata()
	if err != nil || md.Timestamp.IsZero() {
		return 0
	}
	return max(time.Since(md.Timestamp), 0)
}

// delivered is how many times JetStream has delivered msg (1 the first time).
func delivered(msg jetstream.Msg) uint64 {
	md, err := msg.Metadata()
	if err != nil {
		return 1
	}
	return md.NumDelivered
}

// heartbeat tells JetStream the job is alive while it runs, and renews its
// hold: a gateway killed mid-build stops these, and the job is delivered
// again after AckWait. A hold that cannot be kept ends the job with
// errHoldLost.
func (w *Worker) heartbeat(ctx context.Context, log *slog.Logger, msg jetstream.Msg, h *hold, lose context.CancelCauseFunc) (stop func()) {
	hb, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(w.Queue.ackWait/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-hb.Done():
				return
			case <-t.C:
				w.ack(log, "in_progress", msg.InProgress())
				if err := h.renew(hb); errors.Is(err, errHoldLost) {
					lose(errHoldLost)
				} else if err != nil && hb.Err() == nil {
					log.Warn("renewing the build's hold", "err", err)
					w.Metrics.QueueOpError("renew")
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// noteRequeue and noteFailure keep what the dead letter will need to say.
func (w *Worker) noteRequeue(ctx context.Context, buildID string) {
	w.updateState(ctx, buildID, func(st *BuildState) { st.Requeues++ })
}

func (w *Worker) noteFailure(ctx context.Context, buildID string, err error) {
	w.updateState(ctx, buildID, func(st *BuildState) { st.LastError = err.Error() })
}

func (w *Worker) updateState(ctx context.Context, buildID string, change func(*BuildState)) {
	st, _, err := w.Queue.State(ctx, buildID)
	if err == nil {
		change(&st)
		err = w.Queue.SaveState(ctx, buildID, st)
	}
	if err != nil {
		w.Log.Warn("saving build state", "build_id", buildID, "err", err)
	}
}

// bury ends a job that failed or crashed its worker too often: it goes to the
// dead-letter stream, its check run (if it has a commit) says why, and it is
// never delivered again.
func (w *Worker) bury(ctx context.Context, log *slog.Logger, msg jetstream.Msg, job Job, st BuildState, attempts uint64) {
	reason := st.LastError
	if reason == "" {
		reason = "the worker running it stopped without finishing (crashed or was killed)"
	}
	reason = fmt.Sprintf("gave up after %d attempts: %s", attempts, reason)
	log.Error("job dead-lettered", "reason", reason, "subject", SubjectDead)
	if err := w.Queue.Bury(ctx, DeadLetter{Job: job, Reason: reason, Attempts: attempts, At: time.Now().UTC()}); err != nil {
		log.Error("publishing the dead letter; retried", "err", err)
		w.ack(log, "nak", msg.NakWithDelay(w.Queue.retry.delay(1)))
		return
	}
	w.Metrics.DeadLetter(string(job.Kind))
	if job.SHA != "" {
		if err := w.failCheckRun(ctx, job, st, reason); err != nil {
			log.Warn("reporting the dead letter on the check run", "err", err)
		}
	}
	st.Job, st.Done, st.Conclusion = job, true, "failure"
	if err := w.Queue.SaveState(ctx, job.BuildID, st); err != nil {
		log.Warn("saving build state", "err", err)
	}
	w.ack(log, "term", msg.Term())
}

func (w *Worker) failCheckRun(ctx context.Context, job Job, st BuildState, reason string) error {
	cr := githubapp.CheckRun{HeadSHA: job.SHA, ExternalID: job.BuildID, Status: "completed", Conclusion: "failure",
		Title: "lian-build gave up on this build", Summary: "This build was not finished and will not be retried: " + reason + "."}
	if st.CheckRunID != 0 {
		return w.GitHub.UpdateCheckRun(ctx, job.Installation, job.Owner, job.Repo, st.CheckRunID, cr)
	}
	_, err := w.GitHub.CreateCheckRun(ctx, job.Installation, job.Owner, job.Repo, cr)
	return err
}

// process runs a job whose build state handle has just read, holding h.
func (w *Worker) process(ctx context.Context, log *slog.Logger, job Job, st BuildState, h *hold) error {
	if st.Done {
		log.Info("already done; acknowledged again")
		return nil
	}
	pinned := st.Job
	st.Job = job
	switch job.Kind {
	case JobReply:
		if err := w.GitHub.React(ctx, job.Installation, job.Owner, job.Repo, job.CommentID, "eyes"); err != nil {
			log.Warn("reaction", "err", err)
		}
		if err := h.confirm(ctx); err != nil {
			return err
		}
		if err := w.GitHub.Comment(ctx, job.Installation, job.Owner, job.Repo, job.PR, job.Reply); err != nil {
			return err
		}
		st.Done = true
		return w.Queue.SaveState(ctx, job.BuildID, st)
	case JobComment:
		if pinned.SHA != "" {
			// An earlier delivery pinned it (and checked the commenter): its
			// check run, which may exist unrecorded, is on that commit.
			job.SHA, job.Ref = pinned.SHA, pinned.Ref
			break
		}
		if err := w.GitHub.React(ctx, job.Installation, job.Owner, job.Repo, job.CommentID, "eyes"); err != nil {
			log.Warn("reaction", "err", err)
		}
		perm, err := w.GitHub.Permission(ctx, job.Installation, job.Owner, job.Repo, job.Commenter)
		if err != nil {
			return err
		}
		if refusal := shouldRefuseRebuild(perm, job.Association); refusal != "" {
			return w.refuse(ctx, job, st, h, "@"+job.Commenter+" "+refusal)
		}
		sha, fork, err := w.GitHub.PullRequestHead(ctx, job.Installation, job.Owner, job.Repo, job.PR)
		if err != nil {
			return err
		}
		if fork {
			return w.refuse(ctx, job, st, h, "This pull request comes from a fork: lian-build does not build fork code with the repository's credentials and caches.")
		}
		// Pinned to the head as it is now, and recorded before the check
		// run is created: later pushes do not change this build.
		job.SHA, job.Ref = sha, fmt.Sprintf("refs/pull/%d/head", job.PR)
		st.Job = job
		if err := w.Queue.SaveState(ctx, job.BuildID, st); err != nil {
			return err
		}
	case JobRebuild:
		if prev, ok, err := w.Queue.State(ctx, job.RebuildOf); err == nil && ok {
			job.Actor, job.Ref, job.PR = prev.Job.Actor, prev.Job.Ref, prev.Job.PR
			if job.Tier == "" {
				job.Tier = prev.Job.Tier
			}
		} else if job.Actor == "" {
			job.Actor = "ci"
		}
	case JobPush:
	default:
		return fmt.Errorf("unknown job kind %q", job.Kind)
	}
	st.Job = job
	return w.build(ctx, log, job, st, h)
}

// shouldRefuseRebuild decides from the permission API (and, as a fallback, the
// author association) whether a commenter may start a build; "" means yes.
func shouldRefuseRebuild(permission, association string) string {
	switch permission {
	case "admin", "maintain", "write":
		return ""
	}
	if permission == "" && (association == "OWNER" || association == "MEMBER" || association == "COLLABORATOR") {
		return ""
	}
	return "only people with write access to this repository can start lian-build builds."
}

func (w *Worker) refuse(ctx context.Context, job Job, st BuildState, h *hold, msg string) error {
	if err := h.confirm(ctx); err != nil {
		return err
	}
	if err := w.GitHub.Comment(ctx, job.Installation, job.Owner, job.Repo, job.PR, msg); err != nil {
		return err
	}
	st.Done = true
	return w.Queue.SaveState(ctx, job.BuildID, st)
}

func (w *Worker) build(ctx context.Context, log *slog.Logger, job Job, st BuildState, h *hold) error {
	gh := w.GitHub
	var err error
	if st.CheckRunID != 0 {
		// An earlier attempt got this far: if it also reported the result
		// (and then failed to record it, or died), the build is done.
		if done, err := gh.CheckRunCompleted(ctx, job.Installation, job.Owner, job.Repo, st.CheckRunID); err != nil {
			return err
		} else if done {
			log.Info("the build's check run is already completed; not building again")
			st.Done = true
			return w.Queue.SaveState(ctx, job.BuildID, st)
		}
	} else {
		st.CheckRunID, err = gh.CreateCheckRun(ctx, job.Installation, job.Owner, job.Repo, githubapp.CheckRun{HeadSHA: job.SHA, ExternalID: job.BuildID, Status: "queued"})
		if err != nil {
			return err
		}
		if err := w.Queue.SaveState(ctx, job.BuildID, st); err != nil {
			return err
		}
	}
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if key := job.BranchKey(); key != "" {
		w.mu.Lock()
		if w.branches == nil {
			w.branches = map[string]context.CancelCauseFunc{}
		}
		if older, ok := w.branches[key]; ok {
			older(errSuperseded)
		}
		w.branches[key] = cancel
		w.mu.Unlock()
		defer func() {
			w.mu.Lock()
			if w.branches[key] != nil {
				delete(w.branches, key)
			}
			w.mu.Unlock()
		}()
	}
	inProgress := githubapp.CheckRun{HeadSHA: job.SHA, ExternalID: job.BuildID, Status: "in_progress", Title: "building", Summary: fmt.Sprintf("Building `%s` as `%s`.", short(job.SHA), job.Actor)}
	if err := gh.UpdateCheckRun(ctx, job.Installation, job.Owner, job.Repo, st.CheckRunID, inProgress); err != nil {
		return err
	}
	progress := startProgress(ctx, log, w.ProgressEvery, func(ctx context.Context, tail string) error {
		upd := inProgress
		upd.Text = "```\n" + tail + "\n```"
		return gh.UpdateCheckRun(ctx, job.Installation, job.Owner, job.Repo, st.CheckRunID, upd)
	})
	log.Info("build starting", "sha", job.SHA, "actor", job.Actor, "tier", job.Tier)
	res, runErr := w.Exec.Execute(bctx, job, progress)
	progress.Stop() // before the result: no progress update may overwrite it
	if ctx.Err() != nil {
		return ctx.Err() // gateway stopping: the job is redone, with the same check run
	}
	if errors.Is(context.Cause(bctx), errSuperseded) {
		res.Outcome, res.Error = pipeline.OutcomeCanceled, errSuperseded.Error()
	} else if runErr != nil && res.Error == "" {
		res.Error = runErr.Error()
	}
	attrs := []any{"outcome", res.Outcome, "tier", res.Tier, "oom_retries", res.OOMRetries}
	if res.Error != "" {
		attrs = append(attrs, "error", res.Error) // as the check run shows it
	}
	log.Info("build finished", attrs...)
	w.Metrics.Build(res)
	return w.complete(ctx, job, st, h, res)
}

// complete reports the result on the check run, fenced by the hold: a
// worker whose hold ran out reports nothing.
func (w *Worker) complete(ctx context.Context, job Job, st BuildState, h *hold, res pipeline.Result) error {
	path := "Dockerfile"
	if res.Failure != nil && res.Failure.File != "" {
		path = filepath.ToSlash(res.Failure.File)
	}
	cr := githubapp.CheckRun{
		HeadSHA: job.SHA, ExternalID: job.BuildID, Status: "completed", Conclusion: checks.Conclusion(res),
		Title: checks.Title(res), Summary: checks.Summary(res), Text: checks.Text(res),
		Annotations: checks.Annotations(res, path), Actions: checks.Actions(res, w.Table),
	}
	if res.Tier == "" {
		cr.Title = "could not build"
	}
	if err := h.confirm(ctx); err != nil {
		return err
	}
	if err := w.GitHub.UpdateCheckRun(ctx, job.Installation, job.Owner, job.Repo, st.CheckRunID, cr); err != nil {
		return err
	}
	st.Done, st.Conclusion = true, cr.Conclusion
	return w.Queue.SaveState(ctx, job.BuildID, st)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// progressUpdater sends the build's log tail to the check run from one
// goroutine, in order, at most once per interval, the latest tail each
// time. Stop waits for it: no update can land after the final result.
type progressUpdater struct {
	every time.Duration
	send  func(ctx context.Context, tail string) error
	log   *slog.Logger

	mu     sync.Mutex
	buf    []byte
	kick   chan struct{}
	done   chan struct{}
	cancel context.CancelFunc
}

func startProgress(ctx context.Context, log *slog.Logger, every time.Duration, send func(context.Context, string) error) *progressUpdater {
	ctx, cancel := context.WithCancel(ctx)
	p := &progressUpdater{every: every, send: send, log: log, kick: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	go p.loop(ctx)
	return p
}

func (p *progressUpdater) Write(b []byte) (int, error) {
	p.mu.Lock()
	p.buf = append(p.buf, b...)
	if len(p.buf) > 16<<10 {
		p.buf = p.buf[len(p.buf)-16<<10:]
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default: // an update is already due; it will carry this too
	}
	return len(b), nil
}

func (p *progressUpdater) loop(ctx context.Context) {
	defer close(p.done)
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
		if wait := p.every - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		p.mu.Lock()
		tail := string(p.buf)
		p.mu.Unlock()
		if err := p.send(ctx, tail); err != nil && ctx.Err() == nil {
			p.log.Warn("check run progress update failed", "err", err)
		}
	}
}

// Stop ends the updates and waits until none is in flight.
func (p *progressUpdater) Stop() {
	p.cancel()
	<-p.done
}
