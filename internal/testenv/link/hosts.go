package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

// Hosts puts every runner host the fake Hetzner API starts behind its own
// shaped link: the server's public address is a loopback address of its
// own (127.77.x.y), where the link listens on port 22 in front of the
// host's sshd, as a server across a WAN is reached on its address's port 22.
type Hosts struct {
	fakehcloud.Hosts
	Preset Preset

	mu      sync.Mutex
	proxies map[int64]*Proxy
}

// Start starts the host and its link.
func (h *Hosts) Start(ctx context.Context, spec fakehcloud.HostSpec) (string, error) {
	ip, err := h.Hosts.Start(ctx, spec)
	if err != nil {
		return "", err
	}
	public := fmt.Sprintf("127.77.%d.%d", spec.ServerID/250%250, spec.ServerID%250+1)
	p, err := Start(net.JoinHostPort(public, "22"), net.JoinHostPort(ip, "22"), h.Preset)
	if err != nil {
		return "", errors.Join(fmt.Errorf("%w (port 22 on loopback addresses must be free: no sshd on 0.0.0.0:22)", err), h.Hosts.Stop(ctx, spec.ServerID))
	}
	h.mu.Lock()
	if h.proxies == nil {
		h.proxies = map[int64]*Proxy{}
	}
	h.proxies[spec.ServerID] = p
	h.mu.Unlock()
	return public, nil
}

// Stop closes the host's link and stops the host.
func (h *Hosts) Stop(ctx context.Context, serverID int64) error {
	h.mu.Lock()
	p := h.proxies[serverID]
	delete(h.proxies, serverID)
	h.mu.Unlock()
	if p != nil {
		p.Stop()
	}
	return h.Hosts.Stop(ctx, serverID)
}

// Proxy is a running server's link (nil: none).
func (h *Hosts) Proxy(serverID int64) *Proxy {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.proxies[serverID]
}

// Each is every running server's link.
func (h *Hosts) Each() []*Proxy {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Proxy
	for _, p := range h.proxies {
		out = append(out, p)
	}
	return out
}
