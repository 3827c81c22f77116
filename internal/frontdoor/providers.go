package frontdoor

// The compute providers every front door offers: each registers its
// factory, its settings and its capabilities (compute.Register) from its
// package's init. Adding a provider is its package plus one line here.
import (
	_ "github.com/lian-build/action/internal/compute/docker"
	_ "github.com/lian-build/action/internal/compute/hcloud"
	_ "github.com/lian-build/action/internal/compute/local"
	_ "github.com/lian-build/action/internal/compute/proxmox"
	_ "github.com/lian-build/action/internal/compute/vmpool"
)
