package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/lian-build/action/internal/compute/sshx"
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
	// xfsprogs formats a pool VM's warm-state image (runner.sh warm_fs).
	apt := "package_update: true\npackages: [runc, ca-certificates, xfsprogs]\n"
	if sw.Runc != nil {
		apt = ""
	}
	setup, start := bootLines(socket)
	var run strings.Builder
	for _, l := range append(append(setup, runcLine(sw.Runc), installLine(sw.Buildkit)), start) {
		fmt.Fprintf(&run, "  - %s\n", yamlString(l))
	}
	return fmt.Sprintf(`#cloud-config
%[3]swrite_files:
  - path: %[6]s
    content: |
%[7]s
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
%[5]s`, socket, reg.String(), apt, BuildCgroup, run.String(), NoSyncPath, indent(NoSyncProgram(), "      "))
}

// bootLines are what every boot of a runner machine runs: setup makes the
// build cgroup (the machine's memory less 256 MiB) and start starts the
// installed buildkitd in it.
func bootLines(socket string) (setup []string, start string) {
	cg := "/sys/fs/cgroup/" + BuildCgroup
	setup = []string{
		"mkdir -p " + path.Dir(socket),
		"echo +memory +cpu > /sys/fs/cgroup/cgroup.subtree_control",
		fmt.Sprintf("mkdir -p %s && echo +memory +cpu > %[1]s/cgroup.subtree_control", cg),
		fmt.Sprintf("mkdir -p %s/daemon %[1]s/steps", cg),
		fmt.Sprintf("echo $(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024 - 268435456 )) > %s/memory.max", cg),
	}
	start = fmt.Sprintf("test -x /usr/local/bin/buildkitd && { sh -c 'echo $$ > %s/daemon/cgroup.procs && %s /usr/local/bin/buildkitd --config /etc/buildkit/buildkitd.toml' >/var/log/buildkitd.log 2>&1 & }", cg, noSyncStart)
	return setup, start
}

// BootScript is what a runner image runs at every boot in place of its
// first boot's user-data (remote.BootUnit starts it): the build cgroup,
// and the buildkitd the image holds, started in it; nothing downloaded.
func BootScript(socket string) string {
	setup, start := bootLines(socket)
	write := "mkdir -p " + path.Dir(NoSyncPath) + " && cat > " + NoSyncPath + " <<'LIAN_NOSYNC'\n" + NoSyncProgram() + "LIAN_NOSYNC"
	return "#!/bin/sh\n# lian-build: the build cgroup and buildkitd, at every boot of a runner image\n" + strings.Join(append(setup, write, start), "\n") + "\n"
}

// BootScriptPath and BootUnitName are where a runner image keeps them.
const (
	BootScriptPath = "/usr/local/lib/lian-build/boot.sh"
	BootUnitName   = "lian-build-boot.service"
)

// BootUnit is the systemd unit that runs BootScript once at boot; buildkitd
// is left running in the build cgroup, outside the unit's.
const BootUnit = `[Unit]
Description=lian-build: the build cgroup and buildkitd
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh ` + BootScriptPath + `

[Install]
WantedBy=multi-user.target
`

// InstallBoot makes the machine start buildkitd at every boot by itself
// (BootScript, BootUnit): an image made of it needs no user-data.
func InstallBoot(ctx context.Context, c *sshx.Conn, socket string) error {
	b64 := base64.StdEncoding.EncodeToString
	_, err := RunScript(ctx, c, "image-boot", BootScriptPath, b64([]byte(BootScript(socket))), BootUnitName, b64([]byte(BootUnit)))
	return err
}

// indent puts prefix before every line of s (a YAML block's content).
func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

// yamlString is s as a YAML double-quoted scalar (a JSON string is one): a
// shell line may hold ": " or "#", which a plain scalar may not.
func yamlString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}
