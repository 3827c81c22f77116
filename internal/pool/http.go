package pool

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lian-build/action/internal/natsjs"
	"github.com/lian-build/action/internal/pool/poolapi"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

// storeRetryAfter is the Retry-After, in seconds, of a call refused while
// the store is out of reach: about a NATS leader election.
const storeRetryAfter = 2

// HandlerOptions configure the HTTP API.
type HandlerOptions struct {
	Token    string              // bearer token every API request must carry
	Gatherer prometheus.Gatherer // served at /metrics without a token (nil: none)
	Timeout  time.Duration       // bounds a lease request's wait (default 10 min)
}

// Handler is the pool's HTTP API:
//
//	POST   /api/v1/vm-pool             lease a VM (Request → Grant)
//	DELETE /api/v1/vm-pool/{lease_id}  return it (Return → Disposition)
//	POST   /api/v1/vm-pool/{lease_id}/renew  extend it (Renewal → Renewed)
//	GET    /api/v1/vm-pool             list the VMs
//	POST   /api/v1/vm-pool/drain       retire every idle VM, top up none, retire returns
//	POST   /api/v1/vm-pool/resume      end the drain
//	GET    /metrics                    Prometheus
//
// Every /api request needs "Authorization: Bearer TOKEN".
func (s *Service) Handler(o HandlerOptions) http.Handler {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathLeases, func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if !decode(w, r, &req) {
			return
		}
		ctx, cancel := contextTimeout(r, o.Timeout)
		defer cancel()
		g, err := s.Lease(ctx, req)
		reply(w, http.StatusCreated, g, err)
	})
	mux.HandleFunc("DELETE "+PathLeases+"/{lease}", func(w http.ResponseWriter, r *http.Request) {
		ret := Return{Outcome: r.URL.Query().Get("outcome")}
		if ret.Outcome == "" && !decode(w, r, &ret) {
			return
		}
		d, err := s.Return(r.Context(), r.PathValue("lease"), ret)
		reply(w, http.StatusOK, d, err)
	})
	mux.HandleFunc("POST "+PathLeases+"/{lease}/renew", func(w http.ResponseWriter, r *http.Request) {
		var rn Renewal
		if !decode(w, r, &rn) {
			return
		}
		l, err := s.Renew(r.Context(), r.PathValue("lease"), rn)
		reply(w, http.StatusOK, Renewed{LeaseID: l.ID, Expires: l.Expires}, err)
	})
	mux.HandleFunc("GET "+PathLeases, func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context())
		reply(w, http.StatusOK, st, err)
	})
	mux.HandleFunc("POST "+PathResume, func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]any{"draining": false}, s.Resume(r.Context()))
	})
	mux.HandleFunc("POST "+PathDrain, func(w http.ResponseWriter, r *http.Request) {
		ids, err := s.Drain(r.Context())
		reply(w, http.StatusOK, map[string]any{"retired": ids}, err)
	})
	api := requireToken(o.Token, mux)
	root := http.NewServeMux()
	root.Handle("/api/", api)
	if o.Gatherer != nil {
		root.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return root
}

// requireToken answers 401 to a request without the bearer token.
func requireToken(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lian-build vm-pool"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "the Authorization header lacks the pool's bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type apiError = poolapi.ErrorBody

// contextTimeout is the request's context, bounded.
func contextTimeout(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), d)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "request body: " + err.Error()})
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "request body: want one JSON object, found more after it"})
		return false
	}
	return true
}

// reply writes v, or the error with the status its kind maps to.
func reply(w http.ResponseWriter, status int, v any, err error) {
	if err == nil {
		writeJSON(w, status, v)
		return
	}
	var re *RequestError
	var nf *NotFoundError
	switch {
	case errors.As(err, &re):
		writeJSON(w, http.StatusBadRequest, apiError{Error: re.Error(), Field: re.Field})
	case errors.As(err, &nf):
		writeJSON(w, http.StatusNotFound, apiError{Error: nf.Error()})
	case errors.Is(err, errFull):
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
	case natsjs.IsUnavailable(err), errors.Is(err, nats.ErrConnectionClosed):
		// (A closed connection: this replica is stopping; another answers.)
		w.Header().Set("Retry-After", strconv.Itoa(storeRetryAfter))
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the pool's store is unavailable for now: " + err.Error(), Code: poolapi.CodeStoreUnavailable})
	default:
		writeJSON(w, http.StatusBadGateway, apiError{Error: err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
