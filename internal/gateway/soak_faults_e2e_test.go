package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

// soakFaults are what the injector does, each as likely as the others.
var soakFaults = []string{
	"gateway-kill", "gateway-term", "nats-kill", "nats-term", "pool-kill", "pool-term",
	"buildkitd-kill", "ssh-cut", "memory-fill",
	"api-500", "api-429", "api-unavailable", "api-slow-boot", "api-unreachable",
}

// inject applies a fault every 4–12 s until ctx ends, one at a time: what
// it kills or stops it restarts 2–6 s later, before the next fault.
func (r *soakRun) inject(ctx context.Context, s *system, rng *rand.Rand) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(4*time.Second + time.Duration(rng.IntN(8000))*time.Millisecond):
		}
		kind := soakFaults[rng.IntN(len(soakFaults))]
		what, restore := r.apply(s, rng, kind)
		r.logf("%s %s", kind, what)
		if restore != nil {
			time.Sleep(2*time.Second + time.Duration(rng.IntN(4000))*time.Millisecond)
			if err := restore(); err != nil {
				r.logf("restart after %s failed: %v", kind, err)
			}
		}
	}
}

// redelivery notes that a running job may be delivered again from now.
func (r *soakRun) redelivery() {
	r.mu.Lock()
	r.redeliveries = append(r.redeliveries, time.Now())
	r.mu.Unlock()
}

func (r *soakRun) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.injectLog = append(r.injectLog, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

// apply injects one fault; it returns what it hit and, for a process it
// ended, how to start it again.
func (r *soakRun) apply(s *system, rng *rand.Rand, kind string) (string, func() error) {
	count := func() {
		r.mu.Lock()
		r.faults[kind]++
		r.mu.Unlock()
	}
	sig := syscall.SIGKILL
	if kind == "gateway-term" || kind == "nats-term" || kind == "pool-term" {
		sig = syscall.SIGTERM
	}
	switch kind {
	case "gateway-kill", "gateway-term", "pool-kill", "pool-term":
		ps := s.gateways
		if kind[0] == 'p' {
			ps = s.pools
		}
		p := ps[rng.IntN(len(ps))]
		if kind == "gateway-kill" {
			r.redelivery()
		}
		p.Stop(sig)
		count()
		return p.Name, p.Start
	case "nats-kill", "nats-term":
		i := rng.IntN(3)
		r.redelivery()
		if sig == syscall.SIGKILL {
			s.nats.Kill(i)
		} else {
			s.nats.Stop(i)
		}
		count()
		return fmt.Sprintf("node n%d", i+1), func() error { return s.nats.Start(i) }
	case "buildkitd-kill", "ssh-cut", "memory-fill":
		ids := s.hosts.IDs()
		if len(ids) == 0 {
			return "skipped: no runner host", nil
		}
		id := ids[rng.IntN(len(ids))]
		what := fmt.Sprintf("server %d", id)
		switch kind {
		case "buildkitd-kill":
			s.hosts.KillDaemon(id)
		case "ssh-cut":
			what += fmt.Sprintf(": %d sessions cut", s.hosts.CutSessions(id))
		case "memory-fill":
			if err := s.hosts.FillMemory(id); err != nil {
				return "skipped: " + err.Error(), nil
			}
		}
		count()
		return what, nil
	}
	s.apiFault(kind)
	count()
	return "", nil
}

// apiFault switches one of the API's faults on for its next server create.
func (s *system) apiFault(kind string) {
	switch kind {
	case "api-500":
		s.fake.Inject(fakehcloud.Fault{Method: "POST", PathPrefix: "/servers", Times: 1, Status: 500, Code: "service_error"})
	case "api-429":
		s.fake.Inject(fakehcloud.Fault{Method: "POST", PathPrefix: "/servers", Times: 1, Status: 429, Code: "rate_limit_exceeded", ResetIn: 2 * time.Second})
	case "api-unavailable":
		s.fake.Inject(fakehcloud.Fault{Method: "POST", PathPrefix: "/servers", Times: 1, Status: 412, Code: "resource_unavailable"})
	case "api-slow-boot":
		s.hosts.SlowBoots.Add(1)
	case "api-unreachable":
		s.hosts.Unreachable.Add(1)
	}
}
