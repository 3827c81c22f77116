package local

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// BuildkitdConfig renders the buildkitd.toml of one runner.
func BuildkitdConfig(stateDir, socket, cgroupParent string, insecure []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "root = %q\n", stateDir)
	fmt.Fprintf(&b, "[grpc]\n  address = [%q]\n", "unix://"+socket)
	// The trace socket defaults to /run/buildkit/otel-grpc.sock, one path for
	// every daemon: runners starting at once would fight over it.
	fmt.Fprintf(&b, "[otel]\n  socketPath = %q\n", filepath.Join(filepath.Dir(socket), "otel-grpc.sock"))
	b.WriteString("[worker.oci]\n  enabled = true\n  snapshotter = \"overlayfs\"\n  gc = false\n")
	fmt.Fprintf(&b, "  defaultCgroupParent = %q\n", cgroupParent)
	b.WriteString("[worker.containerd]\n  enabled = false\n")
	hosts := append([]string(nil), insecure...)
	sort.Strings(hosts)
	for _, h := range hosts {
		fmt.Fprintf(&b, "[registry.%q]\n  http = true\n  insecure = true\n", h)
	}
	return b.String()
}
