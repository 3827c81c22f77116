package remote

import (
	"fmt"
	"path"
	"strings"
)

// CloudInit is the user-data of a stock-image server: it installs runc and
// the pinned buildkitd, and starts buildkitd on a unix socket only, inside
// the build cgroup with its RUN containers. The cgroup gets the server's
// memory less 256 MiB for sshd and the system, so that a build running out
// of memory — a step or buildkitd itself — is killed there and counted in
// its memory.events, and the server stays reachable to read them.
// Hetzner stores user-data and anyone who can read the project can read it:
// nothing secret goes here (no token, no registry password, no build
// secret) — registries are named, never authenticated.
// Whatever it downloads is verified against its pinned sha256 before it is
// unpacked or installed (sw.Buildkit nil: the image must have buildkitd),
// and buildkitd starts only when it is installed. With runc downloaded too,
// the server needs no package mirror: nothing comes from apt.
func CloudInit(socket string, insecure []string, sw Software) string {
	var reg strings.Builder
	for _, r := range insecure {
		fmt.Fprintf(&reg, "      [registry.%q]\n        http = true\n", r)
	}
	apt := "package_update: true\npackages: [runc, ca-certificates]\n"
	if sw.Runc != nil {
		apt = ""
	}
	return fmt.Sprintf(`#cloud-config
%[7]swrite_files:
  - path: /etc/buildkit/buildkitd.toml
    content: |
      root = "/var/lib/buildkit"
      [grpc]
        address = ["unix://%[1]s"]
      [worker.oci]
        enabled = true
        defaultCgroupParent = "%[4]s/steps"
      [worker.containerd]
        enabled = false
%[2]s
runcmd:
  - mkdir -p %[3]s
  - echo +memory +cpu > /sys/fs/cgroup/cgroup.subtree_control
  - mkdir -p /sys/fs/cgroup/%[4]s && echo +memory +cpu > /sys/fs/cgroup/%[4]s/cgroup.subtree_control
  - mkdir -p /sys/fs/cgroup/%[4]s/daemon /sys/fs/cgroup/%[4]s/steps
  - echo $(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024 - 268435456 )) > /sys/fs/cgroup/%[4]s/memory.max
  - %[6]s
  - %[5]s
  - test -x /usr/local/bin/buildkitd && { sh -c 'echo $$ > /sys/fs/cgroup/%[4]s/daemon/cgroup.procs && exec /usr/local/bin/buildkitd --config /etc/buildkit/buildkitd.toml' >/var/log/buildkitd.log 2>&1 & }
`, socket, reg.String(), path.Dir(socket), BuildCgroup, installLine(sw.Buildkit), runcLine(sw.Runc), apt)
}
