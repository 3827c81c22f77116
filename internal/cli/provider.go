package cli

import (
	"flag"
	"os"

	"github.com/lian-build/action/internal/frontdoor"
)

// The settings the runners, sizing and metrics commands take besides build.
var (
	historySettings = []string{"metrics-dir", "nats-url"}
)

// registerSettings adds the table's flags (only those named in only, when
// not nil), their environment variables read from this process's.
func registerSettings(fs *flag.FlagSet, table []frontdoor.Setting, s *frontdoor.Settings, only []string) {
	frontdoor.RegisterFlags(fs, table, s, only, os.Getenv)
}

// registerProvider adds the compute provider flags.
func registerProvider(fs *flag.FlagSet, s *frontdoor.Settings) {
	registerSettings(fs, frontdoor.SettingsTable(), s, frontdoor.ProviderSettings())
}

// registerHistory adds the P95 history flags: JetStream with --nats-url, files otherwise.
func registerHistory(fs *flag.FlagSet, s *frontdoor.Settings) {
	registerSettings(fs, frontdoor.SettingsTable(), s, historySettings)
}
