// Package link is the test world's wide-area network: a userspace shaper
// (toxiproxy, in this process; the kernel here has no netem) between the
// client and a runner, with the presets of real links and the faults real
// links have — a reset, a stall, a slow close.
package link

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	_ "github.com/Shopify/toxiproxy/v2/toxics" // the toxics register themselves
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/lian-build/action/internal/buildkit"
)

// Preset is a network link between a CI machine and its runner.
type Preset struct {
	Name string
	RTT  time.Duration // round trip; split evenly between the directions
	Mbit int           // bandwidth each way
}

// Presets are the test world's links: a LAN, a runner in the same region
// (15 ms), and one across the Atlantic from its CI (100 ms). Sub-
// millisecond latency cannot be shaped (toxiproxy counts milliseconds):
// lan is bandwidth only.
var Presets = []Preset{
	{Name: "lan", RTT: 500 * time.Microsecond, Mbit: 1000},
	{Name: "eu", RTT: 15 * time.Millisecond, Mbit: 500},
	{Name: "transatlantic", RTT: 100 * time.Millisecond, Mbit: 200},
}

// Parse reads a preset's name, or "latency=RTT,bandwidth=NMbit" (RTT a
// duration, the round trip; bandwidth in Mbit/s, each way).
func Parse(s string) (Preset, error) {
	for _, p := range Presets {
		if p.Name == s {
			return p, nil
		}
	}
	p := Preset{Name: s}
	for _, f := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		var err error
		switch k {
		case "latency":
			p.RTT, err = time.ParseDuration(v)
		case "bandwidth":
			_, err = fmt.Sscanf(strings.TrimSuffix(strings.ToLower(v), "mbit"), "%d", &p.Mbit)
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		if err != nil {
			return Preset{}, fmt.Errorf("link %q: %v (want lan, eu, transatlantic or latency=100ms,bandwidth=200mbit)", s, err)
		}
	}
	if p.Mbit <= 0 || p.RTT < 0 {
		return Preset{}, fmt.Errorf("link %q: want a bandwidth above 0 and a latency of 0 or more", s)
	}
	return p, nil
}

// Floor is the least time bytes can take over the link, one way, with
// roundTrips of the protocol's: bytes ÷ bandwidth + round trips × RTT.
func (l Preset) Floor(bytes int64, roundTrips int) time.Duration {
	return time.Duration(float64(bytes*8)/float64(l.Mbit*1_000_000)*float64(time.Second)) + time.Duration(roundTrips)*l.RTT
}

// Proxy is one shaped link in front of an upstream address.
type Proxy struct {
	// Addr is the address to dial instead of the upstream's.
	Addr   string
	Preset Preset
	proxy  *toxiproxy.Proxy
	mu     sync.Mutex
	faults []string
}

// Start puts a shaped link listening on listen (HOST:PORT; port 0 picks
// one) in front of upstream; Stop removes it.
func Start(listen, upstream string, l Preset) (*Proxy, error) {
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	tp := toxiproxy.NewProxy(server, "link-"+l.Name, listen, upstream)
	if err := tp.Start(); err != nil {
		return nil, fmt.Errorf("link %s on %s: %w", l.Name, listen, err)
	}
	p := &Proxy{Addr: tp.Listen, Preset: l, proxy: tp}
	kbps := int64(l.Mbit) * 1_000_000 / 8 / 1000
	for _, stream := range []string{"upstream", "downstream"} {
		if err := p.add(fmt.Sprintf(`{"name":"bw-%s","type":"bandwidth","stream":%q,"attributes":{"rate":%d}}`, stream, stream, kbps)); err != nil {
			tp.Stop()
			return nil, err
		}
		if half := l.RTT.Milliseconds() / 2; half > 0 {
			if err := p.add(fmt.Sprintf(`{"name":"lat-%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`, stream, stream, half)); err != nil {
				tp.Stop()
				return nil, err
			}
		}
	}
	return p, nil
}

// Shape is Start on a loopback port, removed when the test ends.
func Shape(tb testing.TB, upstream string, l Preset) *Proxy {
	tb.Helper()
	p, err := Start("127.0.0.1:0", upstream, l)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Stop)
	return p
}

// Stop closes the link and every connection through it.
func (p *Proxy) Stop() { p.proxy.Stop() }

func (p *Proxy) add(toxic string) error {
	if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
		return fmt.Errorf("link %s: %w", p.Preset.Name, err)
	}
	return nil
}

func (p *Proxy) fault(name, typ, attrs string) error {
	p.mu.Lock()
	p.faults = append(p.faults, name)
	p.mu.Unlock()
	for _, stream := range []string{"upstream", "downstream"} {
		if err := p.add(fmt.Sprintf(`{"name":"%s-%s","type":%q,"stream":%q,"attributes":%s}`, name, stream, typ, stream, attrs)); err != nil {
			return err
		}
	}
	return nil
}

// Reset resets every connection through the link (TCP RST) as soon as
// data crosses it, until Heal.
func (p *Proxy) Reset() error { return p.fault("reset", "reset_peer", `{"timeout":0}`) }

// Stall stops all data across the link, both ways, for d (then closes
// the connections, as a middlebox dropping a flow does); 0 never ends it
// before Heal.
func (p *Proxy) Stall(d time.Duration) error {
	return p.fault("stall", "timeout", fmt.Sprintf(`{"timeout":%d}`, d.Milliseconds()))
}

// SlowClose delays every close across the link by d.
func (p *Proxy) SlowClose(d time.Duration) error {
	return p.fault("slowclose", "slow_close", fmt.Sprintf(`{"delay":%d}`, d.Milliseconds()))
}

// Heal removes the faults; the shaping stays.
func (p *Proxy) Heal(ctx context.Context) {
	p.mu.Lock()
	faults := p.faults
	p.faults = nil
	p.mu.Unlock()
	for _, f := range faults {
		for _, stream := range []string{"upstream", "downstream"} {
			_ = p.proxy.Toxics.RemoveToxic(ctx, f+"-"+stream)
		}
	}
}

// UploadContext is a build context whose Dockerfile COPYs four files of
// size random bytes in all: an upload that takes a while on a slow link,
// and goes in more than one stream when it is over one part's worth.
func UploadContext(tb testing.TB, size int) string {
	tb.Helper()
	dir := tb.TempDir()
	blob := make([]byte, size/4)
	for i := 1; i <= 4; i++ {
		_, _ = rand.Read(blob)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("blob-%d", i)), blob, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM base\nCOPY blob-* /\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// WhenUploading is a plain-progress writer that runs fault once, on every
// link of hosts, when the context starts crossing ("transferring context"
// through the session, or its stream's step); Fired says whether it did,
// Text is the progress so far.
type WhenUploading struct {
	Hosts *Hosts
	Fault func(*Proxy)
	mu    sync.Mutex
	buf   strings.Builder
	fired bool
}

func (w *WhenUploading) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if text := w.buf.String(); !w.fired && (strings.Contains(text, "transferring context") || strings.Contains(text, buildkit.StreamStep)) {
		w.fired = true
		for _, p := range w.Hosts.Each() {
			w.Fault(p)
		}
	}
	return len(b), nil
}

// Fired says whether the fault was applied.
func (w *WhenUploading) Fired() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fired
}

// Text is the progress written so far.
func (w *WhenUploading) Text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
