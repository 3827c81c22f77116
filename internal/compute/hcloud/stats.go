package hcloud

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lian-build/action/internal/compute"
)

// buildCgroup is where the server's RUN containers run (cgroup v2, as
// Hetzner's stock Debian 12 and Ubuntu 24.04 images mount it), sized to the
// server by cloud-init.
const buildCgroup = "/sys/fs/cgroup/lian-build"

// statsCommand prints the build cgroup's counters, one "name value…" block
// per file, in one round trip.
var statsCommand = fmt.Sprintf(`cd %s && for f in memory.current memory.peak memory.events cpu.stat; do echo "== $f"; cat $f 2>/dev/null; done`, buildCgroup)

// parseStats reads statsCommand's output: memory.current, memory.peak, the
// oom_kill count of memory.events and usage_usec of cpu.stat.
func parseStats(out string) (compute.Stats, error) {
	s := compute.Stats{Time: time.Now()}
	file := ""
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(line, "== "); ok {
			file = name
			continue
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		num := func(i int) (uint64, error) { return strconv.ParseUint(f[i], 10, 64) }
		var err error
		switch {
		case file == "memory.current":
			s.MemoryBytes, err = num(0)
		case file == "memory.peak":
			s.MemoryPeak, err = num(0)
		case file == "memory.events" && len(f) == 2 && f[0] == "oom_kill":
			s.OOMKills, err = num(1)
		case file == "cpu.stat" && len(f) == 2 && f[0] == "usage_usec":
			var us uint64
			us, err = num(1)
			s.CPUUsageNanos = us * 1000
		default:
			continue
		}
		if err != nil {
			return s, fmt.Errorf("%s: %q: %w", file, line, err)
		}
		seen[file] = true
	}
	if !seen["memory.current"] {
		return s, fmt.Errorf("no memory.current in %s (is it a cgroup v2 tree?)", buildCgroup)
	}
	return s, nil
}
