package poolapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lian-build/action/internal/redact"
)

// Client talks to a pool service. Every call is bounded: connecting and
// each call's answer have timeouts of their own (a lease may wait for a
// free VM as long as the pool's own bound), whatever ctx allows.
type Client struct {
	// URL is the pool's, e.g. http://pool:8090, or its replicas'
	// comma-separated: a call goes to the first and on to the next while
	// one refuses the connection, and a lease also while one breaks off
	// without an answer (goesOn).
	URL   string
	Token string
	HTTP  *http.Client // default: one with bounded dial, TLS and answer waits
	// Timeouts override the calls' bounds (zero: the defaults).
	Timeouts Timeouts
}

// Timeouts bound each call of a Client, from the request to the end of
// the answer.
type Timeouts struct {
	Lease, Return, List, Drain time.Duration
	// ReplicasDown is how long a lease or a renewal goes round the
	// replicas again while none answers (replicas restarting).
	ReplicasDown time.Duration
}

// DefaultTimeouts: a lease waits up to the pool's own 10 minutes for a free
// VM; a return recycles the VM; a list answers from the store; a lease
// outlasts its replicas' restart.
var DefaultTimeouts = Timeouts{Lease: 11 * time.Minute, Return: 3 * time.Minute, List: 15 * time.Second, Drain: 2 * time.Minute, ReplicasDown: 15 * time.Second}

// limits are the client's bounds, each unset one the default.
func (c *Client) limits() Timeouts {
	or := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	t, d := c.Timeouts, DefaultTimeouts
	return Timeouts{Lease: or(t.Lease, d.Lease), Return: or(t.Return, d.Return), List: or(t.List, d.List), Drain: or(t.Drain, d.Drain),
		ReplicasDown: or(t.ReplicasDown, d.ReplicasDown)}
}

// defaultHTTP dials and shakes hands within bounds; the call's context
// bounds the answer.
var defaultHTTP = &http.Client{Transport: &http.Transport{
	Proxy:               http.ProxyFromEnvironment,
	DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout: 10 * time.Second,
	MaxIdleConnsPerHost: 4,
	IdleConnTimeout:     90 * time.Second,
}}

// APIError is a pool answering with an error status.
type APIError struct {
	Status int
	Msg    string
	Field  string // the request field at fault, for a 400
	Code   string // CodeStoreUnavailable, or ""
	// RetryAfter is the answer's Retry-After (0: none).
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("vm-pool: %d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// Lease asks for a VM. Every try of the call (on the next replica, after
// one broke off) carries the same request id (one is made when req has
// none), so that a replica takes back what an earlier try was granted.
func (c *Client) Lease(ctx context.Context, req Request) (Grant, error) {
	if req.RequestID == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		req.RequestID = "rq-" + hex.EncodeToString(b)
	}
	var g Grant
	return g, c.do(ctx, c.limits().Lease, http.MethodPost, PathLeases, req, &g)
}

// Return ends a lease with its outcome.
func (c *Client) Return(ctx context.Context, leaseID, outcome string) (Disposition, error) {
	return c.ReturnWith(ctx, leaseID, Return{Outcome: outcome})
}

// ReturnWith ends a lease as ret says (its outcome, and whether to commit
// its warm state).
func (c *Client) ReturnWith(ctx context.Context, leaseID string, ret Return) (Disposition, error) {
	var d Disposition
	return d, c.do(ctx, c.limits().Return, http.MethodDelete, PathLeases+"/"+url.PathEscape(leaseID), ret, &d)
}

// Renew extends a lease: it expires ttl from now.
func (c *Client) Renew(ctx context.Context, leaseID string, ttl time.Duration) (time.Time, error) {
	var out Renewed
	err := c.do(ctx, c.limits().List, http.MethodPost, PathLeases+"/"+url.PathEscape(leaseID)+"/renew", Renewal{TTLSeconds: int64(ttl / time.Second)}, &out)
	return out.Expires, err
}

// List reads the pool's VMs.
func (c *Client) List(ctx context.Context) ([]VM, error) {
	st, err := c.Status(ctx)
	return st.VMs, err
}

// Status reads the pool's VMs and whether it drains.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.do(ctx, c.limits().List, http.MethodGet, PathLeases, nil, &st)
}

// Resume ends a drain.
func (c *Client) Resume(ctx context.Context) error {
	var out map[string]any
	return c.do(ctx, c.limits().List, http.MethodPost, PathResume, nil, &out)
}

// Drain retires every idle VM and names them.
func (c *Client) Drain(ctx context.Context) ([]string, error) {
	var out struct {
		Retired []string `json:"retired"`
	}
	return out.Retired, c.do(ctx, c.limits().Drain, http.MethodPost, PathDrain, nil, &out)
}

// CheckURL checks a pool's URL (or its replicas', comma-separated): http
// or https with a host. It reports whether the URL sends lease grants (each
// carries a private key) in clear over a network: plain http to a host
// that is not loopback.
func CheckURL(raw string) (clear bool, err error) {
	for _, one := range strings.Split(raw, ",") {
		c, err := checkOneURL(strings.TrimSpace(one))
		if err != nil {
			return false, err
		}
		clear = clear || c
	}
	return clear, nil
}

func checkOneURL(raw string) (clear bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false, fmt.Errorf("%q: want http(s)://HOST[:PORT] (or several, comma-separated)", redact.URL(raw))
	}
	if u.User != nil {
		return false, fmt.Errorf("%q: the token goes in its own setting, not in the URL", redact.URL(raw))
	}
	if u.Scheme == "http" {
		ip := net.ParseIP(u.Hostname())
		return !(u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())), nil
	}
	return false, nil
}

// refused reports whether err is a connection the replica refused or
// could not take: the request never reached it.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// TimeoutError is a call the pool did not answer in time.
type TimeoutError struct {
	Method, Path string
	After        time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("vm-pool: %s %s: no answer within %s (is the pool service up and reachable?)", e.Method, e.Path, e.After)
}

func (c *Client) do(ctx context.Context, limit time.Duration, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeoutCause(ctx, limit, &TimeoutError{Method: method, Path: path, After: limit})
	defer cancel()
	err := c.call(ctx, method, path, in, out)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		var te *TimeoutError
		var ae *APIError
		if errors.As(cause, &te) && !errors.As(err, &ae) {
			return te
		}
	}
	return err
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	var downSince time.Time
	for {
		err := c.callReplicas(ctx, method, path, body, out)
		wait, again := retryAfter(err)
		if !again && goesOn(method, path, err) && repeatable(method, path) {
			// No replica answered: they may be restarting.
			if downSince.IsZero() {
				downSince = time.Now()
			}
			wait, again = time.Second, time.Since(downSince) < c.limits().ReplicasDown
		}
		if !again {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// callReplicas makes one call, going on to the next replica as goesOn says.
func (c *Client) callReplicas(ctx context.Context, method, path string, body []byte, out any) error {
	var err error
	for _, base := range strings.Split(c.URL, ",") {
		err = c.callOne(ctx, strings.TrimRight(strings.TrimSpace(base), "/")+path, method, path, body, out)
		if err == nil || ctx.Err() != nil || !goesOn(method, path, err) {
			return err
		}
	}
	return err
}

// retryAfter decides whether a call is made again after err, and when: a
// pool whose store is out of reach for now, after its Retry-After (1–10 s).
// Any other refusal, a full pool's too, is the answer.
func retryAfter(err error) (time.Duration, bool) {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != CodeStoreUnavailable {
		return 0, false
	}
	return min(max(ae.RetryAfter, time.Second), 10*time.Second), true
}

// goesOn decides whether a call goes on to the next replica after err:
// when the replica refused the connection (the call never reached it);
// for a lease, also when the connection broke before an answer (a replica
// stopped or killed mid-lease: a server it may have begun making is taken
// back by the replicas left, as any dead replica's).
func goesOn(method, path string, err error) bool {
	var na *noAnswerError
	return refused(err) || repeatable(method, path) && errors.As(err, &na)
}

// repeatable says whether a call may be made again after a replica broke
// off without answering: a lease (its request id takes back what an
// earlier try was granted) and a renewal (done twice, it extends twice).
func repeatable(method, path string) bool {
	return method == http.MethodPost && (path == PathLeases || strings.HasSuffix(path, "/renew"))
}

// noAnswerError is a call that got no answer: the connection failed or
// broke before the answer was read.
type noAnswerError struct{ err error }

func (e *noAnswerError) Error() string { return e.err.Error() }
func (e *noAnswerError) Unwrap() error { return e.err }

// callOne is one call to one replica.
func (c *Client) callOne(ctx context.Context, u, method, path string, in []byte, out any) error {
	var body io.Reader
	if in != nil {
		body = bytes.NewReader(in)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("vm-pool: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &noAnswerError{fmt.Errorf("vm-pool: %w", err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &noAnswerError{fmt.Errorf("vm-pool: %s %s: %w", method, path, err)}
	}
	if resp.StatusCode >= 300 {
		var ae ErrorBody
		if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
			ae.Error = strings.TrimSpace(string(b))
		}
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return &APIError{Status: resp.StatusCode, Msg: ae.Error, Field: ae.Field, Code: ae.Code, RetryAfter: time.Duration(secs) * time.Second}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("vm-pool: %s %s: answer: %w", method, path, err)
	}
	return nil
}

// CheckToken refuses a bearer token that cannot travel in a header as it
// is: empty, or with spaces or control characters (a token file with a
// trailing space would make every request fail with 401).
func CheckToken(tok string) error {
	switch {
	case tok == "":
		return errors.New("empty")
	case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return errors.New("holds a space or a control character (a header cannot carry it as it is); write the token alone")
	case len(tok) > 4096:
		return errors.New("longer than 4096 bytes")
	}
	return nil
}
