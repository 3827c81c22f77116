package frontdoor

import (
	"slices"
	"strings"

	"github.com/spf13/pflag"
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
func (l *ListValue) Type() string       { return "stringArray" }

// CommaList collects a repeatable flag whose values may also be given
// comma-separated, as buildx takes them (--platform linux/amd64,linux/arm64).
type CommaList []string

func (l *CommaList) String() string { return strings.Join(*l, ",") }
func (l *CommaList) Type() string   { return "strings" }
func (l *CommaList) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// Flag annotations a door's help and completion read.
const (
	// TopicAnnotation is the help section a flag is listed under.
	TopicAnnotation = "lian-build/topic"
	// ChoicesAnnotation marks a flag whose values are a fixed set (the
	// setting's Choices): completed, and an enum in the gateway's schema.
	ChoicesAnnotation = "lian-build/choices"
	// CommaAnnotation marks a text flag that holds a comma-separated list.
	CommaAnnotation = "lian-build/comma"
)

// RegisterFlags adds a flag to fs for each setting of the table that has
// one (only those named in only, when it is not nil): names, defaults,
// help, help topic and choices come from the table, so every command-line
// door (the CLI, the gateway) spells a setting the same way. getenv, when
// not nil, gives the settings' environment variables, used as values but
// never shown as defaults in help (they may hold a credential).
func RegisterFlags(fs *pflag.FlagSet, table []Setting, s *Settings, only []string, getenv func(string) string) {
	for _, st := range table {
		if st.Flag == "" || st.Field == nil || (only != nil && !slices.Contains(only, st.Name)) {
			continue
		}
		help := st.Help
		if st.Env != "" && getenv != nil {
			help += " ($" + st.Env + ")"
		}
		switch p := st.Field(s).(type) {
		case *string:
			fs.StringVarP(p, st.Flag, st.Short, st.Default, help)
		case *bool:
			fs.BoolVarP(p, st.Flag, st.Short, st.Default == "true", help)
		case *[]string:
			if st.Kind == KindList {
				fs.VarP((*CommaList)(p), st.Flag, st.Short, help+" (repeatable, or comma-separated)")
			} else {
				fs.VarP((*ListValue)(p), st.Flag, st.Short, help+" (repeatable)")
			}
		}
		annotate(fs, st)
		if st.Bare != "" {
			fs.Lookup(st.Flag).NoOptDefVal = st.Bare
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

// annotate puts a setting's topic, choices and list form on its flag.
func annotate(fs *pflag.FlagSet, st Setting) {
	if st.Topic != "" {
		_ = fs.SetAnnotation(st.Flag, TopicAnnotation, []string{st.Topic})
	}
	if st.Choices != nil {
		_ = fs.SetAnnotation(st.Flag, ChoicesAnnotation, st.Choices())
	}
	if st.Comma {
		_ = fs.SetAnnotation(st.Flag, CommaAnnotation, []string{"true"})
	}
}
