package testenv

import (
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	_ "github.com/Shopify/toxiproxy/v2/toxics" // the latency and bandwidth toxics register themselves
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// LinkPreset is a network link between a CI machine and its runner.
type LinkPreset struct {
	Name string
	RTT  time.Duration // round trip; split evenly between the directions
	Mbit int           // bandwidth each way
}

// Links are the presets of the test world: a LAN, a runner in the same
// region (15 ms), and one across the Atlantic from its CI (100 ms). Sub-
// millisecond latency cannot be shaped (toxiproxy counts milliseconds):
// lan is bandwidth only.
var Links = []LinkPreset{
	{Name: "lan", RTT: 500 * time.Microsecond, Mbit: 1000},
	{Name: "eu", RTT: 15 * time.Millisecond, Mbit: 500},
	{Name: "transatlantic", RTT: 100 * time.Millisecond, Mbit: 200},
}

// Floor is the least time bytes can take over the link, one way, with
// roundTrips of the protocol's: bytes ÷ bandwidth + round trips × RTT.
func (l LinkPreset) Floor(bytes int64, roundTrips int) time.Duration {
	return time.Duration(float64(bytes*8)/float64(l.Mbit*1_000_000)*float64(time.Second)) + time.Duration(roundTrips)*l.RTT
}

// Shape puts a shaped link (toxiproxy, in this process) in front of
// upstream (HOST:PORT) and returns the address to dial instead; it is
// removed when the test ends.
func Shape(tb testing.TB, upstream string, l LinkPreset) string {
	tb.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	proxy := toxiproxy.NewProxy(server, "link-"+l.Name, "127.0.0.1:0", upstream)
	if err := proxy.Start(); err != nil {
		tb.Fatalf("link %s: %v", l.Name, err)
	}
	tb.Cleanup(proxy.Stop)
	kbps := int64(l.Mbit) * 1_000_000 / 8 / 1000
	for _, stream := range []string{"upstream", "downstream"} {
		toxics := []string{fmt.Sprintf(`{"name":"bw-%s","type":"bandwidth","stream":%q,"attributes":{"rate":%d}}`, stream, stream, kbps)}
		if half := l.RTT.Milliseconds() / 2; half > 0 {
			toxics = append(toxics, fmt.Sprintf(`{"name":"lat-%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`, stream, stream, half))
		}
		for _, tx := range toxics {
			if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(tx)); err != nil {
				tb.Fatalf("link %s: %v", l.Name, err)
			}
		}
	}
	return proxy.Listen
}
