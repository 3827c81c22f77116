package pool

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lian-build/action/internal/pool/poolapi"
)

// A store out of reach (its cluster electing a leader) is a 503 a client
// may repeat after its Retry-After, with the code that says so; a full
// pool's 503 has no such code, any other failure is a 502.
func TestReplyMapsAStoreOutage(t *testing.T) {
	electing := &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
	for _, c := range []struct {
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{fmt.Errorf("pool: update VM lbp-1: %w", electing), http.StatusServiceUnavailable, poolapi.CodeStoreUnavailable, "2"},
		// A bucket's Get meeting the same status (text only), and a replica
		// whose connection closed as it stops: the 60-minute soak saw 10
		// leases fail with a 502 so.
		{fmt.Errorf("pool: read VM lbp-1: %w", fmt.Errorf("nats: %s", "JetStream system temporarily unavailable")), http.StatusServiceUnavailable, poolapi.CodeStoreUnavailable, "2"},
		{fmt.Errorf("pool: lease: %w", nats.ErrConnectionClosed), http.StatusServiceUnavailable, poolapi.CodeStoreUnavailable, "2"},
		{fmt.Errorf("%w: cax11", errFull), http.StatusServiceUnavailable, "", "30"},
		{fmt.Errorf("hcloud: create server: boom"), http.StatusBadGateway, "", ""},
	} {
		rec := httptest.NewRecorder()
		reply(rec, http.StatusOK, nil, c.err)
		var body poolapi.ErrorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != c.status || body.Code != c.code || rec.Header().Get("Retry-After") != c.retryAfter {
			t.Errorf("%v: %d %q Retry-After %q; want %d %q %q", c.err, rec.Code, body.Code, rec.Header().Get("Retry-After"), c.status, c.code, c.retryAfter)
		}
	}
}
