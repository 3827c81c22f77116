package testenv

import (
	"os"
	"strings"
)

// SeccompMode is the Seccomp: field of a /proc status file (a process's or
// a thread's): "0" none, "2" a filter; "0" too when the file is gone (the
// thread or process ended).
func SeccompMode(statusFile string) string {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return "0"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Seccomp:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
