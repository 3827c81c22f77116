// Package proc tells whether a process recorded earlier is still the same
// process: a pid plus its start time, so that a reused pid is not taken for
// the process that owned something.
package proc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Start returns a process's start time (field 22 of /proc/PID/stat), or an
// error when the process does not exist or is a zombie.
func Start(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	if f[0] == "Z" {
		return 0, errors.New("zombie")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Alive reports whether pid is the same process that started at start (0:
// any process with that pid).
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	got, err := Start(pid)
	if err != nil {
		return false
	}
	return start == 0 || got == start
}

// Self is this process's pid and start time.
func Self() (int, uint64) {
	start, _ := Start(os.Getpid())
	return os.Getpid(), start
}
