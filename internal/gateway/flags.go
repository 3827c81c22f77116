package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/spf13/pflag"
)

// BuildSettings are the settings of the table the gateway takes for every
// build (flags, LIAN_GATEWAY_* variables, the configuration file): the
// cache registry, the state store and every compute provider's options.
func BuildSettings() []string {
	return append([]string{"registry", "registry-provider", "registry-username", "registry-password-file",
		"state-store", "state-store-size", "state-max", "metrics-dir", "build-contexts", "events-prefix"}, frontdoor.ProviderSettings()...)
}

// ParseFlags reads the configuration: the file --config (or
// $LIAN_GATEWAY_CONFIG) names, overridden by LIAN_GATEWAY_* variables,
// overridden by flags; then it reads the secret files. Validation is
// Config.Validate.
func ParseFlags(ctx context.Context, args []string, getenv func(string) string) (Config, error) {
	var c Config
	var f fileFlags
	fs := gatewayFlags(&c, &f)
	if err := configure(ctx, fs, &c, args, getenv); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return c, &HelpRequested{Usage: "usage: gateway [flags]\n       gateway check-config FILE\n\nlian-build's GitHub App webhook gateway. Flags (and LIAN_GATEWAY_* variables):\n" + fs.FlagUsages()}
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if err := readSecrets(&c, f.secret, f.key, f.token); err != nil {
		return c, err
	}
	var err error
	if f.appID != "" {
		if c.AppID, err = strconv.ParseInt(f.appID, 10, 64); err != nil || c.AppID <= 0 {
			return c, fmt.Errorf("--app-id %q: want the GitHub App's id, a positive whole number", f.appID)
		}
	}
	c.Route.Branches = splitComma(f.branches)
	c.Route.Allow = splitComma(f.allow)
	c.Route.Table = frontdoor.Table()
	return c, c.Validate()
}

// fileFlags are the flags whose values Config holds in another form (the
// secret files' contents, the app id as a number, the lists).
type fileFlags struct {
	secret, key, token, appID, branches, allow string
}

// gatewayFlags are the gateway's flags: its own, then every build's
// settings from the one settings table; the configuration file's schema
// (Schema) is made from them.
func gatewayFlags(c *Config, f *fileFlags) *pflag.FlagSet {
	fs := pflag.NewFlagSet("gateway", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.StringVar(&c.Listen, "listen", ":8080", "listen address ($LIAN_GATEWAY_LISTEN)")
	fs.StringVar(&f.secret, "webhook-secret-file", "", "file with the webhook secret (required)")
	fs.StringVar(&f.appID, "app-id", "", "GitHub App id")
	fs.StringVar(&f.key, "private-key-file", "", "GitHub App private key (PEM)")
	fs.StringVar(&c.GitHubURL, "github-url", "https://github.com", "GitHub web and git base URL")
	fs.StringVar(&c.GitHubAPIURL, "github-api-url", "https://api.github.com", "GitHub API base URL")
	fs.StringVar(&c.DataDir, "data-dir", "/var/lib/lian-build/gateway", "data directory (embedded NATS, checkouts)")
	fs.StringVar(&c.NatsURL, "nats-url", "", "external NATS (empty: embedded nats-server)")
	fs.IntVar(&c.Concurrency, "concurrency", 2, "builds at once")
	fs.StringVar(&f.branches, "branches", "", "branches whose pushes build, comma-separated (default: the repository's default branch)")
	fs.BoolVar(&c.Route.BuildTags, "build-tags", false, "tag pushes build too")
	fs.StringVar(&f.allow, "allow", "", "orgs or org/repo allowed, comma-separated (default: all installations)")
	fs.StringVar(&f.token, "api-token-file", "", "file with the bearer token of /api/v1 (absent: API off)")
	// Every build's settings come from the one settings table, named as the
	// CLI names them: the registry, the compute provider and its options.
	frontdoor.RegisterFlags(fs, frontdoor.SettingsTable(), &c.Build, BuildSettings(), nil)
	fs.DurationVar(&c.AckWait, "ack-wait", 30*time.Second, "redeliver a job whose worker is silent this long")
	fs.IntVar(&c.Retry.MaxAttempts, "job-attempts", DefaultRetry.MaxAttempts, "attempts of a failing job (a crash of its worker counts) before it is dead-lettered on "+SubjectDead)
	fs.DurationVar(&c.ProgressEvery, "progress-every", 10*time.Second, "at most one check run progress update per interval")
	fs.String("config", "", "configuration file (Nickel, schemas/gateway.ncl); flags and LIAN_GATEWAY_* override it ($LIAN_GATEWAY_CONFIG)")
	for _, name := range []string{"branches", "allow"} {
		_ = fs.SetAnnotation(name, frontdoor.CommaAnnotation, []string{"true"})
	}
	_ = fs.SetAnnotation("app-id", nclTypeAnnotation, []string{"Number"})
	return fs
}

// configure applies the configuration file, if one is named, to the flags
// (before the command line is parsed, so that flags override it).
func configure(ctx context.Context, fs *pflag.FlagSet, c *Config, args []string, getenv func(string) string) error {
	path, err := configPath(args, getenv)
	if err != nil {
		return err
	}
	if path != "" {
		fc, err := LoadConfig(ctx, path)
		if err != nil {
			return err
		}
		c.Repositories = fc.Repos
		if err := fc.apply(fs, getenv); err != nil {
			return err
		}
	}
	return applyEnv(fs, getenv)
}

// readSecrets reads the secret files the flags name (never their values from flags).
func readSecrets(c *Config, secretFile, keyFile, tokenFile string) error {
	read := func(flagName, path string) ([]byte, error) {
		if path == "" {
			return nil, nil
		}
		v, err := frontdoor.ReadSecretFile(flagName, path)
		return []byte(v), err
	}
	var err error
	if c.WebhookSecret, err = read("--webhook-secret-file", secretFile); err != nil {
		return err
	}
	if c.PrivateKey, err = read("--private-key-file", keyFile); err != nil {
		return err
	}
	tok, err := read("--api-token-file", tokenFile)
	c.APIToken = string(tok)
	return err
}

// HelpRequested is -h/--help: the usage to print, exit 0.
type HelpRequested struct{ Usage string }

func (h *HelpRequested) Error() string { return "help requested" }

func splitComma(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
