package remote

import (
	"strings"
	"testing"
)

func TestParseStatsCgroupV2AndV1(t *testing.T) {
	out := "== memory.current\n104857600\n== memory.peak\n209715200\n== memory.events\nlow 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 0\n== cpu.stat\nusage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
	s, err := ParseStats(out)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemoryBytes != 100<<20 || s.MemoryPeak != 200<<20 || s.OOMKills != 2 || s.CPUUsageNanos != 1_500_000_000 {
		t.Fatalf("stats %+v", s)
	}
	v1 := "== memory.usage_in_bytes\n52428800\n== memory.max_usage_in_bytes\n73400320\n== memory.oom_control\noom_kill_disable 0\nunder_oom 0\noom_kill 4\n== cpuacct.usage\n2500000000\n"
	if s, err := ParseStats(v1); err != nil || s.MemoryBytes != 50<<20 || s.MemoryPeak != 70<<20 || s.OOMKills != 4 || s.CPUUsageNanos != 2_500_000_000 {
		t.Fatalf("v1 stats %+v, %v", s, err)
	}
	if _, err := ParseStats("== memory.current\n"); err == nil {
		t.Fatal("a tree without memory.current was accepted")
	}
	if _, err := ParseStats("== memory.current\nlots\n"); err == nil || !strings.Contains(err.Error(), "memory.current") {
		t.Fatalf("bad number: %v", err)
	}
}

func TestCloudInitHoldsNoSecrets(t *testing.T) {
	ci := CloudInit("/run/buildkit/buildkitd.sock", []string{"10.0.0.1:5000"})
	for _, w := range []string{"#cloud-config", `address = ["unix:///run/buildkit/buildkitd.sock"]`, `[registry."10.0.0.1:5000"]`, "defaultCgroupParent"} {
		if !strings.Contains(ci, w) {
			t.Errorf("cloud-init lacks %q", w)
		}
	}
	if strings.Contains(strings.ToLower(ci), "password") {
		t.Error("cloud-init holds a secret")
	}
}
