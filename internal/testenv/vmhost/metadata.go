package vmhost

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

// metadata is Hetzner's metadata service for one server, as cloud-init's
// Hetzner datasource reads it: /hetzner/v1/metadata (YAML: hostname,
// instance-id, public-keys, network-config, …) and /hetzner/v1/userdata
// (the user-data as given at creation). Each request is recorded.
type metadata struct {
	spec fakehcloud.HostSpec
	mac  string
	ip   string

	mu   sync.Mutex
	seen []string
}

// hetznerMetadata is the document /hetzner/v1/metadata answers with.
func (m *metadata) document() map[string]any {
	return map[string]any{
		"hostname":          m.spec.Name,
		"instance-id":       m.spec.ServerID,
		"local-ipv4":        "",
		"public-ipv4":       m.ip,
		"public-keys":       m.spec.SSHKeys,
		"region":            "eu-central",
		"availability-zone": "fsn1-dc14",
		"vendor_data":       "#cloud-config\n{}\n",
		"network-config":    networkConfig(m.mac),
	}
}

// networkConfig is a server's network as cloud-init's version 1 config
// states it, as Hetzner and Proxmox give it: DHCP on eth0.
func networkConfig(mac string) map[string]any {
	return map[string]any{
		"version": 1,
		"config": []any{map[string]any{
			"type": "physical", "name": "eth0", "mac_address": mac,
			"subnets": []any{map[string]any{"type": "dhcp", "ipv4": true}},
		}},
	}
}

func (m *metadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.seen = append(m.seen, r.Method+" "+r.URL.Path)
	m.mu.Unlock()
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch p := strings.TrimSuffix(r.URL.Path, "/"); p {
	case "/hetzner/v1/metadata":
		b, err := yaml.Marshal(m.document())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		_, _ = w.Write(b)
	case "/hetzner/v1/userdata":
		_, _ = w.Write([]byte(m.spec.UserData))
	case "/hetzner/v1/metadata/hostname":
		fmt.Fprint(w, m.spec.Name)
	case "/hetzner/v1/metadata/instance-id":
		fmt.Fprint(w, m.spec.ServerID)
	case "/hetzner/v1/metadata/public-keys":
		b, _ := yaml.Marshal(m.spec.SSHKeys)
		_, _ = w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

// Requests are the paths the guest asked for.
func (m *metadata) Requests() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.seen...)
}

// writeSeed writes a NoCloud seed directory as Proxmox's cloud-init drive
// holds it; qemu presents it as a read-only FAT disk labelled cidata.
func (v *vm) writeSeed(spec fakehcloud.HostSpec) (string, error) {
	dir := filepath.Join(v.dir, "seed")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	network, err := yaml.Marshal(networkConfig(v.net.MAC.String()))
	if err != nil {
		return "", err
	}
	files := map[string]string{
		"meta-data":      fmt.Sprintf("instance-id: %d\nlocal-hostname: %s\n", spec.ServerID, spec.Name),
		"user-data":      spec.UserData,
		"vendor-data":    spec.VendorData,
		"network-config": string(network),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return "", err
		}
	}
	return dir, nil
}
