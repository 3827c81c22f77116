package local

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroup is the parent cgroup of a lease's RUN containers. buildkitd's OCI
// worker creates one child per container under it (defaultCgroupParent), so
// limits set here bound every step of the build together.
type cgroup struct {
	root string // normally /sys/fs/cgroup
	rel  string // e.g. lian-build/<lease>
	v2   bool
}

func detectCgroup(root, rel string) cgroup {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return cgroup{root: root, rel: rel, v2: err == nil}
}

// v1 controllers a lease gets a directory in.
var v1Controllers = []string{"memory", "cpu", "cpuacct", "pids"}

func (c cgroup) dirs() []string {
	if c.v2 {
		return []string{filepath.Join(c.root, c.rel)}
	}
	var out []string
	for _, ctl := range v1Controllers {
		if _, err := os.Stat(filepath.Join(c.root, ctl)); err == nil {
			out = append(out, filepath.Join(c.root, ctl, c.rel))
		}
	}
	return out
}

// allDirs is every hierarchy's directory of the cgroup: runc creates the
// container cgroups in each v1 hierarchy (blkio, devices, freezer, …), not
// only in those whose limits we set.
func (c cgroup) allDirs() []string {
	if c.v2 {
		return c.dirs()
	}
	entries, _ := os.ReadDir(c.root)
	var out []string
	for _, e := range entries {
		d := filepath.Join(c.root, e.Name(), c.rel)
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

func (c cgroup) path(ctl, file string) string {
	if c.v2 {
		return filepath.Join(c.root, c.rel, file)
	}
	return filepath.Join(c.root, ctl, c.rel, file)
}

// create makes the cgroup and applies the memory and CPU limits.
func (c cgroup) create(memBytes int64, cpus int) error {
	if c.v2 {
		// Delegate the controllers down to our parent first.
		parent := c.root
		for _, part := range strings.Split(c.rel, "/") {
			_ = os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory +cpu +pids"), 0o644)
			parent = filepath.Join(parent, part)
			if err := os.MkdirAll(parent, 0o755); err != nil {
				return cgroupErr(parent, err)
			}
		}
		if err := write(c.path("", "memory.max"), strconv.FormatInt(memBytes, 10)); err != nil {
			return err
		}
		_ = write(c.path("", "memory.swap.max"), "0")
		return write(c.path("", "cpu.max"), fmt.Sprintf("%d 100000", cpus*100000))
	}
	for _, d := range c.dirs() {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return cgroupErr(d, err)
		}
	}
	if err := write(c.path("memory", "memory.limit_in_bytes"), strconv.FormatInt(memBytes, 10)); err != nil {
		return err
	}
	// With swap accounting, cap memory+swap too, or a step swaps instead of dying.
	if _, err := os.Stat(c.path("memory", "memory.memsw.limit_in_bytes")); err == nil {
		if err := write(c.path("memory", "memory.memsw.limit_in_bytes"), strconv.FormatInt(memBytes, 10)); err != nil {
			return err
		}
	}
	if err := write(c.path("cpu", "cpu.cfs_period_us"), "100000"); err != nil {
		return err
	}
	return write(c.path("cpu", "cpu.cfs_quota_us"), strconv.Itoa(cpus*100000))
}

func write(path, v string) error {
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		return fmt.Errorf("cgroup: write %s: %w", path, err)
	}
	return nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// keyed reads "key value" lines (memory.oom_control, memory.events, cpu.stat).
func keyed(path, key string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == key {
			return strconv.ParseUint(f[1], 10, 64)
		}
	}
	return 0, nil
}

type cgroupStats struct {
	mem, peak, intervalPeak, cpuNanos, oomKills uint64
}

func (c cgroup) stats() (cgroupStats, error) {
	var s cgroupStats
	var err error
	if c.v2 {
		if s.mem, err = readUint(c.path("", "memory.current")); err != nil {
			return s, err
		}
		s.peak, _ = readUint(c.path("", "memory.peak"))
		usec, err := keyed(c.path("", "cpu.stat"), "usage_usec")
		if err != nil {
			return s, err
		}
		s.cpuNanos = usec * 1000
		s.oomKills, err = keyed(c.path("", "memory.events"), "oom_kill")
		return s, err
	}
	if s.mem, err = readUint(c.path("memory", "memory.usage_in_bytes")); err != nil {
		return s, err
	}
	if s.peak, err = readUint(c.path("memory", "memory.max_usage_in_bytes")); err != nil {
		return s, err
	}
	// Reset the high-water mark: the next reading is the peak of its interval,
	// so short spikes between samples are not missed.
	s.intervalPeak = s.peak
	_ = os.WriteFile(c.path("memory", "memory.max_usage_in_bytes"), []byte("0"), 0o644)
	if s.cpuNanos, err = readUint(c.path("cpuacct", "cpuacct.usage")); err != nil {
		return s, err
	}
	s.oomKills, err = keyed(c.path("memory", "memory.oom_control"), "oom_kill")
	return s, err
}

// adopt moves a process into the cgroup: in v1 into each controller's
// directory; in v2 into a "daemon" child, since a v2 cgroup whose children
// hold processes may hold none itself.
func (c cgroup) adopt(pid int) error {
	dirs := c.dirs()
	if c.v2 {
		d := filepath.Join(c.root, c.rel, "daemon")
		if err := os.MkdirAll(d, 0o755); err != nil {
			return cgroupErr(d, err)
		}
		dirs = []string{d}
	}
	for _, d := range dirs {
		if err := write(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// pids lists every process in the cgroup tree.
func (c cgroup) pids() []int {
	var out []int
	seen := map[int]bool{}
	for _, d := range c.allDirs() {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					out = append(out, pid)
				}
			}
			return nil
		})
	}
	return out
}

// remove kills what is left inside the cgroup and removes its directories,
// deepest first. A missing cgroup is not an error.
func (c cgroup) remove() error {
	var errs []error
	for attempt := 0; attempt < 50; attempt++ {
		pids := c.pids()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range c.allDirs() {
		var sub []string
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- {
			if err := rmdirRetry(sub[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func rmdirRetry(p string) error {
	var err error
	for i := 0; i < 50; i++ {
		err = syscall.Rmdir(p)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("cgroup: remove %s: %w", p, err)
}

// cgroupErr says what to do when the cgroup tree is not writable (an
// unprivileged container, such as a GitHub-hosted container action).
func cgroupErr(path string, err error) error {
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("cgroup %s: %w: the local provider needs root with a writable cgroup tree (a privileged container or a self-hosted machine); elsewhere, as on GitHub-hosted runners, use compute-provider: hcloud", path, err)
	}
	return fmt.Errorf("cgroup %s: %w", path, err)
}
