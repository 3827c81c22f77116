package pool

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/events"
	"github.com/lian-build/action/internal/natsjs"
	"github.com/lian-build/action/internal/safefile"
	"github.com/lian-build/action/internal/sizing"
)

// ServeOptions are a pool service's settings (`lian-build pool serve`).
type ServeOptions struct {
	Listen       string // host:port of the API
	Token        string // the API's bearer token
	Name         string // the pool's name (default "default")
	NatsURL      string // the KV bucket and the events ("": an embedded nats-server in DataDir)
	DataDir      string // the embedded nats-server's store
	EventsPrefix string
	HCloud       hcloud.Settings // Arch is set per architecture
	Archs        []string        // architectures served (default arm)
	KeyFile      string          // the pool's SSH key (OpenSSH PEM); created when missing
	Signer       ssh.Signer      // the key already loaded (else KeyFile is read)
	Policy       Policy
	UpkeepEvery  time.Duration // default 30 s
	SSHTimeout   time.Duration // default DefaultSSHTimeout
	Logger       *slog.Logger
	// Ready, when set, gets the address the API listens on.
	Ready func(addr string)
}

// Serve runs a pool service until ctx ends: the API, and the upkeep every
// UpkeepEvery. The bucket survives it; a restart reconciles.
func Serve(ctx context.Context, o ServeOptions) error {
	if o.Token == "" {
		return errors.New("pool: a bearer token is required")
	}
	if o.UpkeepEvery <= 0 {
		o.UpkeepEvery = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckToken(o.Token); err != nil {
		return fmt.Errorf("pool: the bearer token: %w", err)
	}
	if err := CheckName(o.Name); err != nil {
		return fmt.Errorf("pool: name: %w", err)
	}
	signer := o.Signer
	if signer == nil {
		var err error
		if signer, err = LoadOrCreateKey(o.KeyFile); err != nil {
			return err
		}
	}
	clouds, err := cloudsFor(o.HCloud, o.Archs)
	if err != nil {
		return err
	}
	if o.NatsURL == "" {
		if o.DataDir == "" {
			return errors.New("pool: --nats-url or --data-dir is required")
		}
		url, stop, err := natsjs.Embedded(filepath.Join(o.DataDir, "nats"))
		if err != nil {
			return err
		}
		defer stop()
		o.NatsURL = url
		o.Logger.Info("embedded nats-server (one replica; give --nats-url for several)", "dir", filepath.Join(o.DataDir, "nats"))
	}
	nc, err := nats.Connect(o.NatsURL, nats.Name("lian-build pool"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return fmt.Errorf("nats-url: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	store, err := OpenStore(ctx, js, o.Name)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pub := events.New(events.Options{URL: o.NatsURL, Prefix: o.EventsPrefix, Logger: o.Logger})
	defer pub.Close()
	svc, err := New(Options{Name: o.Name, Policy: o.Policy, Clouds: clouds, Signer: signer, Store: store, Events: pub,
		Metrics: NewMetrics(reg), Logger: o.Logger, SSHTimeout: o.SSHTimeout})
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	return svc.serveHTTP(ctx, o, reg)
}

func (s *Service) serveHTTP(ctx context.Context, o ServeOptions, reg *prometheus.Registry) error {
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(HandlerOptions{Token: o.Token, Gatherer: reg}), ReadHeaderTimeout: 10 * time.Second}
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	s.o.Logger.Info("vm pool serving", "addr", ln.Addr().String(), "pool", s.o.Name)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		s.Run(gctx, o.UpkeepEvery)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		s.Wait()
		s.sayWhatStays(sctx)
		return err
	})
	return g.Wait()
}

// sayWhatStays logs, when the service stops, the VMs it leaves running:
// they are the pool's (a restart takes them back), and billed meanwhile.
func (s *Service) sayWhatStays(ctx context.Context) {
	vms, err := s.List(ctx)
	if err != nil {
		s.o.Logger.Warn("pool serve stopped; its VMs could not be listed", "err", err)
		return
	}
	if len(vms) == 0 {
		s.o.Logger.Info("pool serve stopped; the pool has no VM")
		return
	}
	for _, v := range vms {
		s.o.Logger.Info("pool serve stopped; this VM stays (billed) until a restarted pool retires it", "vm", v.ID, "server", v.ServerID, "state", v.State, "tier", v.Tier)
	}
	s.o.Logger.Warn("pool serve stopped with VMs left: restart it to manage them, or run `lian-build pool drain` and wait for the leases before stopping, to leave none", "vms", len(vms))
}

func cloudsFor(base hcloud.Settings, archs []string) (map[string]Cloud, error) {
	if len(archs) == 0 {
		archs = []string{"arm"}
	}
	out := map[string]Cloud{}
	for _, a := range archs {
		st := base
		st.Arch = a
		p, err := hcloud.New(st)
		if err != nil {
			return nil, err
		}
		out[a] = p
	}
	return out, nil
}

// nameRE is a pool's name: a Hetzner label value and part of a KV bucket's
// and a server's name.
var nameRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$`)

// CheckName checks a pool's name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s: want 1 to 32 lower-case letters, digits and '-' (not at either end)", quote(name))
	}
	return nil
}

// LoadOrCreateKey reads the pool's SSH key, or creates it (mode 0600) when
// the file does not exist.
func LoadOrCreateKey(path string) (ssh.Signer, error) {
	if path == "" {
		return nil, errors.New("pool: --ssh-key-file is required (the pool's own key; created when missing)")
	}
	b, err := safefile.Read(path, 64<<10)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, gerr
		}
		block, gerr := ssh.MarshalPrivateKey(priv, "lian-build pool")
		if gerr != nil {
			return nil, gerr
		}
		b = pem.EncodeToMemory(block)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("ssh-key-file %s: %w", path, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("ssh-key-file: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("ssh-key-file %s: %w", path, err)
	}
	return signer, nil
}

// ParseTierCounts reads "cax11=1,cax21=2" (the name of the setting goes in errors).
func ParseTierCounts(setting, text string) (map[string]int, error) {
	out := map[string]int{}
	for _, item := range strings.Split(text, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		tier, n, ok := strings.Cut(item, "=")
		count, err := strconv.Atoi(n)
		if !ok || err != nil || count < 0 {
			return nil, fmt.Errorf("%s: %q: want TIER=N (N ≥ 0)", setting, item)
		}
		if _, err := sizing.HCloud.Lookup(tier); err != nil {
			return nil, fmt.Errorf("%s: %w", setting, err)
		}
		out[tier] = count
	}
	return out, nil
}
