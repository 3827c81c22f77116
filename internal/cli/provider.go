package cli

import (
	"flag"

	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/metrics"
)

// registerProvider adds the compute provider flags.
func registerProvider(fs *flag.FlagSet, s *frontdoor.Settings) {
	fs.StringVar(&s.ComputeProvider, "provider", "local", "compute provider: local")
	fs.StringVar(&s.Local.StateDir, "state-dir", envOr("LIAN_STATE_DIR", local.DefaultStateDir), "local provider: runner state directory ($LIAN_STATE_DIR)")
	fs.StringVar(&s.Local.Buildkitd, "buildkitd", envOr("LIAN_BUILDKITD", ""), "local provider: buildkitd binary (default: on PATH or next to lian-build; $LIAN_BUILDKITD)")
	fs.StringVar(&s.Local.TierMemory, "local-tier-memory", envOr("LIAN_LOCAL_TIER_MEMORY", ""), "local provider: memory per tier, e.g. cax11=256MiB,cax21=512MiB ($LIAN_LOCAL_TIER_MEMORY)")
	fs.Var((*listFlag)(&s.Insecure), "insecure-registry", "HOST:PORT of a plain-HTTP registry (repeatable)")
}

// registerHistory adds the P95 history flags: JetStream with --nats-url, files otherwise.
func registerHistory(fs *flag.FlagSet, s *frontdoor.Settings) {
	fs.StringVar(&s.MetricsDir, "metrics-dir", envOr("LIAN_METRICS_DIR", metrics.DefaultDir), "P95 history directory when NATS is not used ($LIAN_METRICS_DIR)")
	fs.StringVar(&s.NatsURL, "nats-url", envOr("LIAN_NATS_URL", ""), "NATS server: lifecycle events and the shared P95 history ($LIAN_NATS_URL)")
}
