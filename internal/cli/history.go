package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/lian-build/action/internal/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// historyFlags select where the P95 history lives: JetStream when --nats-url
// is set, a local file store otherwise.
type historyFlags struct {
	dir     string
	natsURL string
}

func (h *historyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.dir, "metrics-dir", envOr("LIAN_METRICS_DIR", metrics.DefaultDir), "P95 history directory when NATS is not used ($LIAN_METRICS_DIR)")
	fs.StringVar(&h.natsURL, "nats-url", envOr("LIAN_NATS_URL", ""), "NATS server: lifecycle events and the shared P95 history ($LIAN_NATS_URL)")
}

// open returns the recorder and a close function.
func (h *historyFlags) open(ctx context.Context) (metrics.Recorder, func(), error) {
	if h.natsURL == "" {
		return metrics.Recorder{Store: metrics.FileStore{Dir: h.dir}}, func() {}, nil
	}
	nc, err := nats.Connect(h.natsURL, nats.Timeout(2*time.Second), nats.Name("lian-build metrics"), nats.MaxReconnects(0))
	if err != nil {
		return metrics.Recorder{}, nil, fmt.Errorf("--nats-url: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return metrics.Recorder{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := metrics.OpenKV(ctx, js)
	if err != nil {
		nc.Close()
		return metrics.Recorder{}, nil, err
	}
	return metrics.Recorder{Store: kv}, nc.Close, nil
}
