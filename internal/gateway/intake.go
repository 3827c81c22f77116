package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// MaxBody is above GitHub's 25 MB payload cap.
const MaxBody = 25<<20 + 1<<10

// Intake is POST /webhooks/github: it only handles HTTP — verify, dedupe,
// route, queue — and answers as soon as the job is durably queued.
type Intake struct {
	Secret  []byte
	Queue   *Queue
	Route   RouteConfig
	Log     *slog.Logger
	Metrics *Metrics
	// Closed stops intake during shutdown (503).
	Closed func() bool
}

// VerifySignature checks X-Hub-Signature-256 (HMAC-SHA256 of the raw body) in constant time.
func VerifySignature(secret, body []byte, header string) bool {
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// Sign is the X-Hub-Signature-256 value of body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (in *Intake) Handle(c echo.Context) error {
	start := time.Now()
	req := c.Request()
	event, delivery := req.Header.Get("X-GitHub-Event"), req.Header.Get("X-GitHub-Delivery")
	log := in.Log.With("delivery_id", clip(delivery), "event", clip(event))
	outcome := "error"
	defer func() { in.Metrics.Delivery(metricEvent(event), outcome, time.Since(start)) }()
	reply := func(code int, o, msg string) error {
		outcome = o
		if code >= 400 {
			log.Warn("delivery refused", "status", code, "reason", msg)
		} else {
			log.Info("delivery", "status", code, "outcome", o, "detail", msg)
		}
		return c.JSON(code, map[string]string{"status": o, "message": msg})
	}
	if in.Closed != nil && in.Closed() {
		return reply(http.StatusServiceUnavailable, "shutting_down", "the gateway is shutting down; GitHub will redeliver")
	}
	if event == "" {
		return reply(http.StatusBadRequest, "bad_request", "missing header X-GitHub-Event")
	}
	if delivery == "" {
		return reply(http.StatusBadRequest, "bad_request", "missing header X-GitHub-Delivery")
	}
	if err := ValidDelivery(delivery); err != nil {
		return reply(http.StatusBadRequest, "bad_request", err.Error())
	}
	if len(event) > 64 {
		return reply(http.StatusBadRequest, "bad_request", "header X-GitHub-Event longer than 64 bytes")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return reply(http.StatusRequestEntityTooLarge, "too_large", "body larger than 25 MB")
		}
		return reply(http.StatusBadRequest, "bad_request", "reading the body: "+err.Error())
	}
	sig := req.Header.Get("X-Hub-Signature-256")
	if sig == "" {
		return reply(http.StatusUnauthorized, "unauthorized", "missing header X-Hub-Signature-256")
	}
	if !VerifySignature(in.Secret, body, sig) {
		return reply(http.StatusUnauthorized, "unauthorized", "X-Hub-Signature-256 does not match the body")
	}
	d, err := Route(event, delivery, body, in.Route)
	if err != nil {
		return reply(http.StatusBadRequest, "bad_request", err.Error())
	}
	if event == "ping" {
		return reply(http.StatusOK, "pong", "pong")
	}
	// JetStream calls are made again while its cluster elects a leader
	// (natsjs.Retry), within what leaves the answer inside GitHub's 10 s.
	ctx, cancel := context.WithTimeout(req.Context(), intakeBound)
	defer cancel()
	return in.accept(ctx, log, delivery, d, reply)
}

// intakeBound bounds recording a delivery and queuing its job.
const intakeBound = 8 * time.Second

// accept queues a delivery's job and records the delivery. The job is
// queued first (JetStream drops a second copy by its message id, the
// delivery id) and the delivery recorded afterwards: a gateway that dies
// between the two has queued the job, and the redelivery is deduplicated;
// recording first would lose the job with a gateway that died before
// queuing it. Of the replicas that queued it, the one whose claim on the
// record holds answers 202; the others, and those that found it queued,
// answer 200.
func (in *Intake) accept(ctx context.Context, log *slog.Logger, delivery string, d Decision, reply func(int, string, string) error) error {
	if seen, err := in.Queue.Seen(ctx, delivery); err != nil {
		return reply(http.StatusServiceUnavailable, "unavailable", "checking the delivery: "+err.Error())
	} else if seen {
		return reply(http.StatusOK, "duplicate", "delivery "+delivery+" was already accepted")
	}
	if d.Job == nil {
		switch err := in.Queue.Accept(ctx, delivery); {
		case errors.Is(err, ErrDuplicate):
			return reply(http.StatusOK, "duplicate", "delivery "+delivery+" was already accepted")
		case err != nil:
			return reply(http.StatusServiceUnavailable, "unavailable", "recording the delivery: "+err.Error())
		}
		return reply(http.StatusOK, "ignored", d.Ignore)
	}
	queuedBefore, err := in.Queue.Enqueue(ctx, *d.Job)
	if err != nil {
		return reply(http.StatusServiceUnavailable, "unavailable", "queuing: "+err.Error())
	}
	if queuedBefore {
		// By a replica answering this delivery now, or by an earlier
		// accept whose record was lost (NATS failed between the two).
		if err := in.Queue.Accept(ctx, delivery); err != nil && !errors.Is(err, ErrDuplicate) {
			log.Warn("recording the delivery failed; its job was queued before", "err", err)
		}
		return reply(http.StatusOK, "duplicate", "delivery "+delivery+" was already accepted")
	}
	switch err := in.Queue.Claim(ctx, delivery); {
	case errors.Is(err, ErrDuplicate):
		return reply(http.StatusOK, "duplicate", "delivery "+delivery+" was accepted by another replica")
	case err != nil:
		// Queued for good; its worker records the delivery.
		log.Warn("recording the delivery failed; its job is queued", "err", err)
	}
	log.Info("queued", "build_id", d.Job.BuildID, "kind", d.Job.Kind, "repo", d.Job.Owner+"/"+d.Job.Repo)
	return reply(http.StatusAccepted, "queued", "build "+d.Job.BuildID)
}

// clip bounds a header value before it goes into a log line or a metric label.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// metricEvent keeps the event label's values to the events GitHub sends the
// App (a hostile header must not create series without bound).
func metricEvent(event string) string {
	switch event {
	case "ping", "push", "issue_comment", "check_run", "check_suite", "pull_request", "installation", "installation_repositories":
		return event
	}
	return "other"
}
