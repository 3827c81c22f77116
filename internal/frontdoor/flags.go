package frontdoor

import (
	"flag"
	"slices"
	"strings"
)

// ProviderSettings are the settings that choose and configure the compute
// provider — the choice, the plain-HTTP registries every provider's
// buildkitd honours, and every flag the registered providers declare —
// which every command that opens a provider (build, runners, catalog
// build, the gateway) takes.
func ProviderSettings() []string {
	out := []string{"compute-provider", "insecure-registries"}
	for _, st := range providerSettings() {
		if st.Flag != "" {
			out = append(out, st.Name)
		}
	}
	return out
}

// ListValue collects a repeatable flag (-t a -t b).
type ListValue []string

func (l *ListValue) String() string     { return strings.Join(*l, ",") }
func (l *ListValue) Set(v string) error { *l = append(*l, v); return nil }

// CommaList collects a repeatable flag whose values may also be given
// comma-separated, as buildx takes them (--platform linux/amd64,linux/arm64).
type CommaList []string

func (l *CommaList) String() string { return strings.Join(*l, ",") }
func (l *CommaList) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// RegisterFlags adds a flag to fs for each setting of the table that has
// one (only those named in only, when it is not nil): names, defaults and
// help come from the table, so every command-line door (the CLI, the
// gateway) spells a setting the same way. getenv, when not nil, gives the
// settings' environment variables, used as values but never shown as
// defaults in help (they may hold a credential).
func RegisterFlags(fs *flag.FlagSet, table []Setting, s *Settings, only []string, getenv func(string) string) {
	for _, st := range table {
		if st.Flag == "" || st.Field == nil || (only != nil && !slices.Contains(only, st.Name)) {
			continue
		}
		help := st.Help
		if st.Env != "" && getenv != nil {
			help += " ($" + st.Env + ")"
		}
		if st.Kind != KindText && st.Kind != KindBool {
			help += " (repeatable)"
		}
		for _, name := range []string{st.Flag, st.Short} {
			if name == "" {
				continue
			}
			switch p := st.Field(s).(type) {
			case *string:
				fs.StringVar(p, name, st.Default, help)
			case *bool:
				fs.BoolVar(p, name, st.Default == "true", help)
			case *[]string:
				if st.Kind == KindList {
					fs.Var((*CommaList)(p), name, help)
				} else {
					fs.Var((*ListValue)(p), name, help)
				}
			}
		}
		if st.Env == "" || getenv == nil {
			continue
		}
		if v := getenv(st.Env); v != "" {
			if p, ok := st.Field(s).(*string); ok {
				*p = v
			}
		}
	}
}
