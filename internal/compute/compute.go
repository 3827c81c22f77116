// Package compute spawns and destroys BuildKit runners.
//
// A Provider turns a tier and a lease into a Runner; a Runner hands out a
// BuildKit client, reports resource use and is destroyed, always, by the
// pipeline. Providers label what they create as lian-build's so that an orphan
// reaper can find it after a crash.
package compute

import (
	"context"
	"time"

	"github.com/lian-build/action/internal/sizing"
	"github.com/moby/buildkit/client"
)

// Lease names one runner: an id, how long it may live, and labels.
type Lease struct {
	ID     string
	TTL    time.Duration
	Labels map[string]string
}

// Stats is a point-in-time reading of a runner's resource use.
type Stats struct {
	Time          time.Time
	MemoryBytes   uint64 // current usage of the build's containers
	MemoryPeak    uint64 // high-water mark since spawn
	IntervalPeak  uint64 // high-water mark since the previous reading (0: unknown)
	CPUUsageNanos uint64 // cumulative CPU time of the build's containers
	OOMKills      uint64 // cumulative count of processes the kernel killed for memory
}

// Runner is one spawned BuildKit daemon.
type Runner interface {
	// Client connects to the runner's buildkitd. The caller closes it.
	Client(ctx context.Context) (*client.Client, error)
	// Stats reads the runner's resource counters.
	Stats(ctx context.Context) (Stats, error)
	// Destroy stops the runner and removes everything it owned. It is safe to call twice.
	Destroy(ctx context.Context) error
}

// Provider creates runners of a given tier.
type Provider interface {
	Name() string
	Tiers() sizing.Table
	Spawn(ctx context.Context, tier sizing.Tier, lease Lease) (Runner, error)
}

// Label keys put on everything a provider creates.
const (
	LabelLease   = "lian-build/lease"
	LabelExpires = "lian-build/expires"
)
