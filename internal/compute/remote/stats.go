package remote

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lian-build/action/internal/compute"
)

// BuildCgroup holds the server's buildkitd and its RUN containers, limited
// to the server's memory less what sshd and the system need (cloudinit.go).
// Hetzner's stock Debian 12 and Ubuntu 24.04 images mount cgroup v2; an
// image on cgroup v1 has it under each controller instead.
const BuildCgroup = "lian-build"

// StatsCommand prints the build cgroup's counters in one round trip, one
// "== file" block per file, from the v2 tree or else the v1 one, then the
// machine's kernel release and its cgroup tree's filesystem (a pool
// lease's key runs this and nothing else).
var StatsCommand = fmt.Sprintf(`c=/sys/fs/cgroup; b=%[1]s; B=
[ -f /run/lian-build/runner.env ] && . /run/lian-build/runner.env && b=${B:-$b}
if [ -f $c/$b/memory.current ]; then set -- $b/memory.current $b/memory.peak $b/memory.events $b/cpu.stat
elif [ -d $c/memory/$b ]; then set -- memory/$b/memory.usage_in_bytes memory/$b/memory.max_usage_in_bytes memory/$b/memory.oom_control cpuacct/$b/cpuacct.usage
else echo "no $b cgroup under $c" >&2; exit 1; fi
for f; do echo "== ${f##*/}"; cat $c/$f 2>/dev/null; done
echo "== kernel"; uname -r; echo "== cgroup"; stat -fc %%T $c/`, BuildCgroup)

// counter is one value StatsCommand prints: a file (v2 or v1) and, for
// keyed files, the key.
type counter struct {
	file, key string
	set       func(*compute.Stats, uint64)
}

var counters = []counter{
	{"memory.current", "", func(s *compute.Stats, v uint64) { s.MemoryBytes = v }},
	{"memory.usage_in_bytes", "", func(s *compute.Stats, v uint64) { s.MemoryBytes = v }},
	{"memory.peak", "", func(s *compute.Stats, v uint64) { s.MemoryPeak = v }},
	{"memory.max_usage_in_bytes", "", func(s *compute.Stats, v uint64) { s.MemoryPeak = v }},
	{"memory.events", "oom_kill", func(s *compute.Stats, v uint64) { s.OOMKills = v }},
	{"memory.oom_control", "oom_kill", func(s *compute.Stats, v uint64) { s.OOMKills = v }},
	{"cpu.stat", "usage_usec", func(s *compute.Stats, v uint64) { s.CPUUsageNanos = v * 1000 }},
	{"cpuacct.usage", "", func(s *compute.Stats, v uint64) { s.CPUUsageNanos = v }},
}

// ParseStats reads StatsCommand's output, v2 or v1. A reading without the
// memory in use is refused: the cgroup is not what it should be.
func ParseStats(out string) (compute.Stats, error) {
	s := compute.Stats{Time: time.Now()}
	memory := false
	err := eachBlockLine(out, func(file, line string) error {
		f := strings.Fields(line)
		for _, c := range counters {
			if c.file != file || (c.key == "" && len(f) != 1) || (c.key != "" && (len(f) != 2 || f[0] != c.key)) {
				continue
			}
			v, err := strconv.ParseUint(f[len(f)-1], 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %q: %w", file, line, err)
			}
			c.set(&s, v)
			memory = memory || file == "memory.current" || file == "memory.usage_in_bytes"
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	if !memory {
		return s, fmt.Errorf("no memory in use (memory.current or memory.usage_in_bytes) under the %s cgroup", BuildCgroup)
	}
	return s, nil
}

// eachBlockLine calls fn with each non-empty line of StatsCommand's output
// and the "== NAME" block it is in, until fn fails.
func eachBlockLine(out string, fn func(block, line string) error) error {
	block := ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(line, "== "); ok {
			block = name
			continue
		}
		if line == "" {
			continue
		}
		if err := fn(block, line); err != nil {
			return err
		}
	}
	return nil
}

// ParseMachine reads the kernel release and cgroup version (2: the unified
// tree, cgroup2fs; else 1) from StatsCommand's output.
func ParseMachine(out string) (kernel string, cgroupVersion int, err error) {
	_ = eachBlockLine(out, func(block, line string) error {
		switch {
		case block == "kernel":
			kernel = line
		case block == "cgroup" && line == "cgroup2fs":
			cgroupVersion = 2
		case block == "cgroup":
			cgroupVersion = 1
		}
		return nil
	})
	if kernel == "" || cgroupVersion == 0 {
		return "", 0, fmt.Errorf("no kernel or cgroup tree in %q", out)
	}
	return kernel, cgroupVersion, nil
}
