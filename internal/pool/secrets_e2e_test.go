package pool_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/testenv"
)

// A lease's private key and the pool's bearer token go to the lease holder
// only: they are in no log line, event, KV entry, and no request to the
// cloud (labels, user-data, key names); the Hetzner token is sent only in
// the Authorization header.
func TestSecretsStayOutOfLogsEventsStateAndTheCloud(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	logs := &testenv.SyncBuffer{}
	w.logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ns := testenv.StartNATS(t, false)
	sub := testenv.SubscribeNATS(t, ns, ">")
	w.useEvents(t, ns.ClientURL())
	ctx := context.Background()
	var keys []string
	for _, outcome := range []string{"ok", "error"} {
		g, err := w.client.Lease(ctx, pool.Request{Tier: "cax11"})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, keyBody(g.Key))
		if _, err := w.client.Return(ctx, g.LeaseID, outcome); err != nil {
			t.Fatal(err)
		}
	}
	// A failed build's VM is recycled, not retired: the drain retires it.
	if _, err := w.client.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for {
		m, err := sub.NextMsg(500 * time.Millisecond)
		if err != nil {
			break
		}
		seen = append(seen, m.Subject+" "+string(m.Data))
	}
	if len(seen) < 3 {
		t.Fatalf("events seen: %v", seen)
	}
	kv, err := w.js.KeyValue(ctx, "lian_pool_test")
	if err != nil {
		t.Fatal(err)
	}
	var state []string
	lister, _ := kv.ListKeys(ctx)
	for k := range lister.Keys() {
		if e, err := kv.Get(ctx, k); err == nil {
			state = append(state, string(e.Value()))
		}
	}
	var cloud []string
	for _, r := range w.fake.Requests() {
		cloud = append(cloud, r.Method+" "+r.Path+"?"+r.Query+" "+r.Body)
	}
	places := map[string]string{"log": logs.String(), "events": strings.Join(seen, "\n"), "kv": strings.Join(state, "\n"), "cloud": strings.Join(cloud, "\n")}
	for where, text := range places {
		for _, secret := range append(keys, poolToken, hcToken) {
			if strings.Contains(text, secret) {
				t.Errorf("a secret (%.12s…) is in the %s", secret, where)
			}
		}
	}
	if !strings.Contains(logs.String(), "pool VM retired") {
		t.Errorf("the log is not the service's: %q", logs.String())
	}
	w.drainAndCheck(t)
}

// keyBody is a piece of a PEM private key's secret body, from within one
// line (what would show if the key leaked, however it was printed).
func keyBody(pemKey string) string {
	lines := strings.Split(strings.TrimSpace(pemKey), "\n")
	mid := lines[len(lines)/2]
	return mid[:min(40, len(mid))]
}
