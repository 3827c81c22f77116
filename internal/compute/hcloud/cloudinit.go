package hcloud

import (
	"fmt"
	"path"
	"strings"
)

// cloudInit is the user-data of a stock-image server: it installs runc and
// the pinned buildkitd, creates the build cgroup and starts buildkitd on a
// unix socket only. Hetzner stores user-data and anyone who can read the
// project can read it: nothing secret goes here (no token, no registry
// password, no build secret) — registries are named, never authenticated.
func cloudInit(socket string, insecure []string) string {
	var reg strings.Builder
	for _, r := range insecure {
		fmt.Fprintf(&reg, "      [registry.%q]\n        http = true\n", r)
	}
	return fmt.Sprintf(`#cloud-config
package_update: true
packages: [runc, ca-certificates]
write_files:
  - path: /etc/buildkit/buildkitd.toml
    content: |
      root = "/var/lib/buildkit"
      [grpc]
        address = ["unix://%s"]
      [worker.oci]
        enabled = true
        defaultCgroupParent = "lian-build"
      [worker.containerd]
        enabled = false
%s
runcmd:
  - mkdir -p %s %s
  - echo +memory +cpu > /sys/fs/cgroup/cgroup.subtree_control
  - curl -fsSL https://github.com/moby/buildkit/releases/download/v0.34.2/buildkit-v0.34.2.linux-$(dpkg --print-architecture).tar.gz | tar -xz -C /usr/local
  - nohup /usr/local/bin/buildkitd --config /etc/buildkit/buildkitd.toml >/var/log/buildkitd.log 2>&1 &
`, socket, reg.String(), path.Dir(socket), buildCgroup)
}
