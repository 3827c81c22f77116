package cli

import (
	"flag"
	"os"
	"slices"

	"github.com/lian-build/action/internal/frontdoor"
)

// The settings the runners, sizing and metrics commands take besides build.
var (
	providerSettings = []string{"compute-provider", "state-dir", "buildkitd", "local-tier-memory", "insecure-registries", "hcloud-token-file", "hcloud-endpoint", "hcloud-location", "hcloud-image", "hcloud-buildkit-url", "hcloud-buildkit-sha256", "pool-url", "pool-token-file", "docker-host", "docker-image", "docker-network",
		"proxmox-endpoint", "proxmox-token-file", "proxmox-node", "proxmox-template", "proxmox-full-clone", "proxmox-ca-file", "proxmox-insecure-http"}
	historySettings = []string{"metrics-dir", "nats-url"}
)

// registerSettings adds a flag for each setting of the table that the CLI
// has (only those named in only, when it is not nil): the flags, their
// defaults, environment variables and help all come from the table.
func registerSettings(fs *flag.FlagSet, table []frontdoor.Setting, s *frontdoor.Settings, only []string) {
	for _, st := range table {
		if st.Flag == "" || st.Field == nil || (only != nil && !slices.Contains(only, st.Name)) {
			continue
		}
		def, help := st.Default, st.Help
		if st.Env != "" {
			help += " ($" + st.Env + ")"
		}
		if st.Kind != frontdoor.KindText && st.Kind != frontdoor.KindBool {
			help += " (repeatable)"
		}
		for _, name := range []string{st.Flag, st.Short} {
			if name == "" {
				continue
			}
			switch p := st.Field(s).(type) {
			case *string:
				fs.StringVar(p, name, def, help)
			case *bool:
				fs.BoolVar(p, name, def == "true", help)
			case *[]string:
				fs.Var((*listFlag)(p), name, help)
			}
		}
		// The environment's value is used but never shown as the default
		// in help: it may hold a credential (a URL with a password).
		if v := os.Getenv(st.Env); st.Env != "" && v != "" {
			if p, ok := st.Field(s).(*string); ok {
				*p = v
			}
		}
	}
}

// registerProvider adds the compute provider flags.
func registerProvider(fs *flag.FlagSet, s *frontdoor.Settings) {
	registerSettings(fs, frontdoor.SettingsTable(), s, providerSettings)
}

// registerHistory adds the P95 history flags: JetStream with --nats-url, files otherwise.
func registerHistory(fs *flag.FlagSet, s *frontdoor.Settings) {
	registerSettings(fs, frontdoor.SettingsTable(), s, historySettings)
}
