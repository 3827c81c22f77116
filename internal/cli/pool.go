package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/report"
	"github.com/lian-build/action/internal/sizing"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// poolClientSettings are the flags of `pool ls|drain`; serve adds the hcloud ones.
var (
	poolClientSettings = []string{"pool-url", "pool-token-file"}
	poolHCloudSettings = []string{"hcloud-token-file", "hcloud-endpoint", "hcloud-location", "hcloud-image", "hcloud-buildkit-url", "hcloud-buildkit-sha256", "hcloud-runc-url", "hcloud-runc-sha256", "insecure-registries", "nats-url", "events-prefix"}
)

// poolCommand is `lian-build pool serve|ls|drain|resume`.
func poolCommand(log *slog.Logger) *cobra.Command {
	c := &cobra.Command{Use: "pool", Short: "a VM pool: lease Hetzner runners, reuse them within the billed hour"}
	asGroup(c)
	c.AddCommand(poolServeCommand(log))
	for _, sub := range []struct{ name, short string }{
		{"ls", "the pool's VMs and leases"},
		{"drain", "retire idle VMs and make none (each leased VM retires when its lease returns)"},
		{"resume", "end a drain: idle VMs are topped up again"},
	} {
		s := newSettings()
		cmd := &cobra.Command{Use: sub.name, Short: sub.short, Args: noArgs, RunE: func(c *cobra.Command, _ []string) error {
			return poolClientCommand(c.Context(), c.Name(), *s, c.OutOrStdout())
		}}
		registerSettings(cmd, frontdoor.SettingsTable(), s, poolClientSettings)
		c.AddCommand(cmd)
	}
	return c
}

func poolClientCommand(ctx context.Context, cmd string, s frontdoor.Settings, stdout io.Writer) error {
	c, err := poolClient(s)
	if err != nil {
		return err
	}
	switch cmd {
	case "drain":
		ids, err := c.Drain(ctx)
		for _, id := range ids {
			fmt.Fprintf(stdout, "retired %s\n", id)
		}
		if err == nil && len(ids) == 0 {
			fmt.Fprintln(stdout, "no idle VM")
		}
		if err == nil {
			fmt.Fprintln(stdout, "the pool drains: no idle VM is topped up and each VM is retired when its lease returns (lian-build pool resume ends it)")
		}
		return err
	case "resume":
		if err := c.Resume(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "the pool resumed: idle VMs are topped up again")
		return nil
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	vms := st.VMs
	if st.Draining {
		fmt.Fprintf(stdout, "pool %s is draining (lian-build pool resume ends it)\n", st.Pool)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tSERVER\tTIER\tSTATE\tLEASE\tLEASES\tBILLED UNTIL\tWARM STATE\tREADY FOR")
	for _, v := range vms {
		lease := "-"
		if v.Lease != nil {
			lease = fmt.Sprintf("%s (%s, until %s)", v.Lease.ID, v.Lease.Class, v.Lease.Expires.UTC().Format(time.TimeOnly))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", v.ID, v.ServerID, v.Tier, v.State, lease, v.Leases,
			pool.BilledUntil(v.Created, time.Now()).UTC().Format(time.TimeOnly), warmText(v.Warm), readyText(v.Ready))
	}
	return tw.Flush()
}

// warmText lists a VM's committed generations: "ci/app@3 (1.2 GiB), …".
func warmText(w map[string]pool.Warm) string {
	if len(w) == 0 {
		return "-"
	}
	var out []string
	for _, ns := range slices.Sorted(maps.Keys(w)) {
		out = append(out, fmt.Sprintf("%s@%d (%s)", ns, w[ns].Generation, report.Bytes(uint64(w[ns].Bytes))))
	}
	return strings.Join(out, ", ")
}

// readyText is what an idle VM's buildkitd already runs on, for the lease
// that wants it: "ci/app@3", "empty tree", "no state" ("-": a lease is
// granted over SSH).
func readyText(r *pool.Ready) string {
	switch {
	case r == nil:
		return "-"
	case r.Tree == "":
		return "no state"
	case r.Namespace == "":
		return "empty tree"
	}
	return fmt.Sprintf("%s@%d", r.Namespace, r.Generation)
}

func poolClient(s frontdoor.Settings) (*pool.Client, error) {
	if s.Option("pool-url") == "" {
		return nil, usageErr("--pool-url (or $LIAN_POOL_URL) is required")
	}
	clear, err := pool.CheckURL(s.Option("pool-url"))
	if err != nil {
		return nil, usageErr("--pool-url: %v", err)
	}
	if clear {
		fmt.Fprintln(os.Stderr, "lian-build: warning: --pool-url is plain http to another machine: the bearer token crosses the network in clear")
	}
	tok, err := secretFrom("--pool-token-file", s.Option("pool-token-file"), "LIAN_POOL_TOKEN")
	if err != nil {
		return nil, err
	}
	if err := pool.CheckToken(tok); err != nil {
		return nil, usageErr("--pool-token-file: %v", err)
	}
	return &pool.Client{URL: s.Option("pool-url"), Token: tok}, nil
}

// poolFlags are serve's own flags.
type poolFlags struct {
	listen, tokenFile, name, keyFile, archs, minIdle, maxVMs, dataDir, warmBytes      string
	retireBefore, upkeep, keepWarm, awaitRecycling, awaitBusy, stuckAfter, sshTimeout time.Duration
	separate, upsize, crossHour                                                       bool
}

func poolServeCommand(log *slog.Logger) *cobra.Command {
	s := newSettings()
	var f poolFlags
	c := &cobra.Command{Use: "serve", Short: "run the pool's service: its API, upkeep and Hetzner servers", Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o, err := serveOptions(*s, f)
			if err != nil {
				return err
			}
			o.Logger = log
			if os.Getenv("LIAN_LOG_LEVEL") == "" {
				// A service says what it does; a build command only what goes wrong.
				o.Logger = slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			}
			return pool.Serve(c.Context(), o)
		}}
	registerPoolFlags(c.Flags(), &f)
	registerSettings(c, frontdoor.SettingsTable(), s, poolHCloudSettings)
	return c
}

func registerPoolFlags(fs *pflag.FlagSet, f *poolFlags) {
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8090", "address of the pool's API")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the API's bearer token (required; or $LIAN_POOL_TOKEN)")
	fs.StringVar(&f.name, "name", "default", "the pool's name: its servers' label and its KV bucket")
	fs.StringVar(&f.keyFile, "ssh-key-file", "", "the pool's own SSH key, created when missing (required)")
	fs.StringVar(&f.dataDir, "data-dir", "/var/lib/lian-build/pool", "without --nats-url: the embedded nats-server's store (one replica; --nats-url for several)")
	fs.StringVar(&f.archs, "arch", "arm", "architectures served: arm (cax), x86 (cpx), or arm,x86")
	fs.StringVar(&f.minIdle, "min-idle", "", "idle VMs each tier keeps ready, e.g. cax11=1,cax21=1")
	fs.StringVar(&f.maxVMs, "max-vms", "", "most VMs of a tier, leased or not, e.g. cax41=2")
	fs.DurationVar(&f.retireBefore, "retire-before", 3*time.Minute, "retire an idle VM this long before its next billed hour")
	fs.DurationVar(&f.upkeep, "upkeep-every", 30*time.Second, "how often expired leases, idle VMs and orphans are looked at")
	fs.BoolVar(&f.separate, "separate-classes", false, "keep ci and session (human, agent) leases on separate VMs")
	fs.BoolVar(&f.upsize, "upsize", false, "let a build take an idle VM of a larger tier when none of its own is idle")
	fs.BoolVar(&f.crossHour, "cross-hour", false, "let a build take an idle VM whose billed hour does not hold it (it pays the VM's next hour instead of a new server's first)")
	fs.DurationVar(&f.keepWarm, "keep-warm", time.Hour, "keep an idle VM into its next billed hour while it holds the newest warm state of a namespace committed within this long (0: retire at the hour's end; ADR 0013)")
	fs.DurationVar(&f.awaitBusy, "await-busy", 0, "how long a lease for warm state may wait for the leased VM holding its namespace's newest state, when that lease is expected to end within it, rather than start cold elsewhere (0: never; ADR 0013)")
	fs.DurationVar(&f.stuckAfter, "stuck-after", pool.Stale, "how long a VM may stay creating or recycling before upkeep takes it over: retired if creating; if recycling (its return's settler died), recycled again with its warm state read back from its disk")
	fs.StringVar(&f.warmBytes, "warm-bytes", "", "most committed warm state a VM keeps on its disk, e.g. 20GiB; past it the namespaces committed longest ago are dropped (default: half the server's disk)")
	fs.DurationVar(&f.sshTimeout, "ssh-timeout", pool.DefaultSSHTimeout, "how long the pool waits for a VM on SSH, a new server's first answer included; a new server that does not answer in time is deleted and another made, once")
	fs.DurationVar(&f.awaitRecycling, "await-recycling", 30*time.Second, "how long a lease with no idle VM waits for one being recycled before a new server is made (0: never)")
}

// awaitFlag is --await-recycling as the policy takes it (0: never).
func awaitFlag(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

func serveOptions(s frontdoor.Settings, f poolFlags) (pool.ServeOptions, error) {
	o := pool.ServeOptions{Listen: f.listen, Name: f.name, NatsURL: s.NatsURL, DataDir: f.dataDir, EventsPrefix: s.EventsPrefix, KeyFile: f.keyFile, UpkeepEvery: f.upkeep,
		SSHTimeout: f.sshTimeout,
		Archs:      strings.Split(f.archs, ","), Policy: pool.Policy{RetireBefore: f.retireBefore, SeparateClasses: f.separate, Upsize: f.upsize, CrossHour: f.crossHour,
			KeepWarm: f.keepWarm, AwaitRecycling: awaitFlag(f.awaitRecycling), AwaitBusy: f.awaitBusy, StuckAfter: f.stuckAfter}}
	if err := checkServeFlags(f, o.Archs); err != nil {
		return o, err
	}
	var err error
	if f.warmBytes != "" {
		if o.Policy.WarmBytes, err = sizing.ParseSize(f.warmBytes); err != nil || o.Policy.WarmBytes <= 0 {
			return o, usageErr("--warm-bytes %q: want a size such as 20GiB", f.warmBytes)
		}
	}
	if o.Token, err = secretFrom("--token-file", f.tokenFile, "LIAN_POOL_TOKEN"); err != nil {
		return o, err
	}
	if err := pool.CheckToken(o.Token); err != nil {
		return o, usageErr("--token-file: %v", err)
	}
	hcTok, err := secretFrom("--hcloud-token-file", s.Option("hcloud-token-file"), "HCLOUD_TOKEN")
	if err != nil {
		return o, err
	}
	o.HCloud = hcloud.Settings{Token: hcTok, Endpoint: s.Option("hcloud-endpoint"), Image: s.Option("hcloud-image"), Insecure: s.Insecure, BuildkitURL: s.Option("hcloud-buildkit-url"), RuncURL: s.Option("hcloud-runc-url")}
	if o.HCloud.BuildkitPins, err = remote.ParsePins(s.Option("hcloud-buildkit-sha256")); err != nil {
		return o, usageErr("--hcloud-buildkit-sha256: %v", err)
	}
	if o.HCloud.RuncPins, err = remote.ParsePins(s.Option("hcloud-runc-sha256")); err != nil {
		return o, usageErr("--hcloud-runc-sha256: %v", err)
	}
	if o.HCloud.Endpoint == "" {
		o.HCloud.Endpoint = os.Getenv("HCLOUD_ENDPOINT")
	}
	for _, l := range strings.Split(s.Option("hcloud-location"), ",") {
		if l = strings.TrimSpace(l); l != "" {
			o.HCloud.Locations = append(o.HCloud.Locations, l)
		}
	}
	if o.Policy.MinIdle, err = pool.ParseTierCounts("--min-idle", f.minIdle); err != nil {
		return o, &UsageError{Msg: err.Error()}
	}
	if o.Policy.MaxVMs, err = pool.ParseTierCounts("--max-vms", f.maxVMs); err != nil {
		return o, &UsageError{Msg: err.Error()}
	}
	for tier, n := range o.Policy.MinIdle {
		if max, ok := o.Policy.MaxVMs[tier]; ok && n > max {
			return o, usageErr("--min-idle %s=%d: more than --max-vms %s=%d", tier, n, tier, max)
		}
	}
	if o.Signer, err = pool.LoadOrCreateKey(f.keyFile); err != nil {
		return o, &UsageError{Msg: err.Error(), Err: err}
	}
	return o, nil
}

// checkServeFlags refuses serve's settings that would leave a pool
// unusable, naming the flag.
func checkServeFlags(f poolFlags, archs []string) error {
	if err := frontdoor.CheckListen("--listen", f.listen); err != nil {
		return &UsageError{Msg: err.Error(), Err: err}
	}
	if err := pool.CheckName(f.name); err != nil {
		return usageErr("--name: %v", err)
	}
	if f.stuckAfter < 10*time.Second {
		return usageErr("--stuck-after %s: want at least 10s (a return takes seconds to settle; a shorter bound would take over settles still running)", f.stuckAfter)
	}
	if f.sshTimeout < 10*time.Second {
		return usageErr("--ssh-timeout %s: want at least 10s (a recycle restarts buildkitd over SSH)", f.sshTimeout)
	}
	if f.awaitBusy < 0 || f.awaitBusy > 9*time.Minute {
		return usageErr("--await-busy %s: want from 0 to 9m (a lease waits at most 10 minutes)", f.awaitBusy)
	}
	if f.keepWarm < 0 {
		return usageErr("--keep-warm %s: may not be negative (0: retire idle VMs at their hour's end)", f.keepWarm)
	}
	seen := map[string]bool{}
	for _, a := range archs {
		if (a != "arm" && a != "x86") || seen[a] {
			return usageErr("--arch %q: want arm, x86 or arm,x86 (each once)", f.archs)
		}
		seen[a] = true
	}
	if f.retireBefore < 0 || f.retireBefore >= time.Hour {
		return usageErr("--retire-before %s: want from 0 to under an hour (a VM is billed by the hour; %s before the next hour leaves no time to reuse it)", f.retireBefore, f.retireBefore)
	}
	if f.upkeep <= 0 || f.upkeep > 10*time.Minute {
		return usageErr("--upkeep-every %s: want more than 0 and at most 10m", f.upkeep)
	}
	return nil
}

// secretFrom reads a secret from its file, else the environment variable.
func secretFrom(flagName, file, env string) (string, error) {
	if file != "" {
		return frontdoor.ReadSecretFile(flagName, file)
	}
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	return "", usageErr("%s (or $%s) is required", flagName, env)
}
