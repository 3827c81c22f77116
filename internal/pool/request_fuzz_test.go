package pool

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/cache"
)

// A lease request body, whatever it holds, is decoded and checked without
// a panic; a request that passes has a lease life within (0, MaxTTL], an
// expected duration within [0, MaxExpected] and fields by their rules.
func FuzzLeaseRequest(f *testing.F) {
	for _, s := range []string{
		`{"tier":"cax21","ttl_seconds":10000000000}`, `{"tier":"cax11","ttl_seconds":-5}`,
		`{"tier":"cax11","expected_seconds":9223372036854775807}`, `{"tier":"cax31","workspace":"../../etc"}`,
		`{"tier":"cax41","location":"fsn1","actor_class":"human","build_id":"b-1"}`, `{"tier":"cax11"}{"tier":"x"}`,
		`{"tier":"cax11","ttl_seconds":21600,"expected_seconds":21600,"arch":"x86"}`, `[]`, `null`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, PathLeases, strings.NewReader(body))
		var req Request
		if !decode(rec, r, &req) {
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("a refused body answered %d", rec.Code)
			}
			return
		}
		if err := req.Normalize(); err != nil {
			return
		}
		if req.TTL() <= 0 || req.TTL() > MaxTTL {
			t.Fatalf("lease life %v from %q", req.TTL(), body)
		}
		if req.Expected() < 0 || req.Expected() > MaxExpected {
			t.Fatalf("expected %v from %q", req.Expected(), body)
		}
		if req.Workspace != "" && cache.NameRule(req.Workspace) != "" {
			t.Fatalf("workspace %q accepted", req.Workspace)
		}
		if now := time.Now(); !now.Add(req.TTL()).After(now) {
			t.Fatalf("a lease born expired from %q", body)
		}
	})
}
