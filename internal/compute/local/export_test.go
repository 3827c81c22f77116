package local

import "github.com/lian-build/action/internal/compute"

// DaemonPID is a local runner's buildkitd.
func DaemonPID(r compute.Runner) int { return r.(*runner).pid }
