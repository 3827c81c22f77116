package remote

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestParseStatsCgroupV2AndV1(t *testing.T) {
	out := "== memory.current\n104857600\n== memory.peak\n209715200\n== memory.events\nlow 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 0\n== cpu.stat\nusage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n" +
		"== kernel\n6.1.0-50-cloud-amd64\n== cgroup\ncgroup2fs\n"
	s, err := ParseStats(out)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemoryBytes != 100<<20 || s.MemoryPeak != 200<<20 || s.OOMKills != 2 || s.CPUUsageNanos != 1_500_000_000 {
		t.Fatalf("stats %+v", s)
	}
	if k, v, err := ParseMachine(out); k != "6.1.0-50-cloud-amd64" || v != 2 || err != nil {
		t.Fatalf("machine %q v%d %v", k, v, err)
	}
	if k, v, err := ParseMachine("== memory.current\n1\n== kernel\n6.18.0\n== cgroup\ntmpfs\n"); k != "6.18.0" || v != 1 || err != nil {
		t.Fatalf("v1 machine %q v%d %v", k, v, err)
	}
	if _, _, err := ParseMachine("== memory.current\n1\n"); err == nil {
		t.Fatal("no kernel: accepted")
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

// runcmd is the user-data's commands as the shell gets them, one a line
// (the user-data must be valid YAML).
func runcmd(t *testing.T, userData string) string {
	t.Helper()
	var cfg struct {
		RunCmd []string `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal([]byte(userData), &cfg); err != nil {
		t.Fatalf("user-data is not valid YAML: %v\n%s", err, userData)
	}
	return strings.Join(cfg.RunCmd, "\n")
}

func TestCloudInitHoldsNoSecrets(t *testing.T) {
	ci := CloudInit("/run/buildkit/buildkitd.sock", []string{"10.0.0.1:5000"}, Software{})
	for _, w := range []string{"#cloud-config", `address = ["unix:///run/buildkit/buildkitd.sock"]`, `[registry."10.0.0.1:5000"]`, "defaultCgroupParent"} {
		if !strings.Contains(ci, w) {
			t.Errorf("cloud-init lacks %q", w)
		}
	}
	if strings.Contains(strings.ToLower(ci), "password") {
		t.Error("cloud-init holds a secret")
	}
}

// Nothing downloaded is unpacked before its sha256 matches the pin, and
// buildkitd starts only when installed; without a pin nothing is fetched.
func TestCloudInitVerifiesWhatItDownloads(t *testing.T) {
	pins, err := ParsePins("arm64=" + strings.Repeat("ab", 32) + ", amd64=" + strings.Repeat("cd", 32))
	if err != nil {
		t.Fatal(err)
	}
	ci := runcmd(t, CloudInit("/run/buildkit/buildkitd.sock", nil, Software{Buildkit: For("", pins, "arm64")}))
	get, check, unpack := strings.Index(ci, "curl -fsSL"), strings.Index(ci, strings.Repeat("ab", 32)+"  /run/buildkit.tgz\" | sha256sum -c -"), strings.Index(ci, "tar -xzf /run/buildkit.tgz")
	if get < 0 || check < get || unpack < check || !strings.Contains(ci, "set -e") || !strings.Contains(ci, "linux-arm64.tar.gz") {
		t.Errorf("the download is not verified before it is unpacked:\n%s", ci)
	}
	if strings.Contains(ci, "| tar") || !strings.Contains(ci, "test -x /usr/local/bin/buildkitd && ") {
		t.Errorf("an unverified pipe into tar, or buildkitd started unconditionally:\n%s", ci)
	}
	if none := runcmd(t, CloudInit("/s", nil, Software{Buildkit: For("", pins, "riscv64")})); strings.Contains(none, "curl") || !strings.Contains(none, "no pinned download") {
		t.Errorf("without a pin the user-data downloads:\n%s", none)
	}
	for _, bad := range []string{"arm64=abc", "arm64", "mips=" + strings.Repeat("a", 64), "arm64=" + strings.Repeat("A", 64)} {
		if _, err := ParsePins(bad); err == nil {
			t.Errorf("ParsePins(%q) accepted", bad)
		}
	}
	if d := For("https://mirror.example/bk-{arch}.tgz", pins, "amd64"); d.URL != "https://mirror.example/bk-amd64.tgz" || d.SHA256 != strings.Repeat("cd", 32) {
		t.Errorf("download %+v", d)
	}
}

// With runc pinned the server needs no package mirror: runc is fetched,
// verified, then installed, and nothing comes from apt.
func TestCloudInitWithoutAPT(t *testing.T) {
	pins, err := ParsePins("amd64=" + strings.Repeat("cd", 32))
	if err != nil {
		t.Fatal(err)
	}
	withAPT := CloudInit("/s", nil, Software{Buildkit: For("", pins, "amd64")})
	if !strings.Contains(withAPT, "packages: [runc") || !strings.Contains(withAPT, "package_update: true") {
		t.Errorf("runc not from the packages without a runc pin:\n%s", withAPT)
	}
	ci := CloudInit("/s", nil, Software{Buildkit: For("", pins, "amd64"), Runc: RuncFor("http://172.31.1.1:8080/runc.{arch}", pins, "amd64")})
	if strings.Contains(ci, "packages:") || strings.Contains(ci, "package_update") {
		t.Errorf("apt is still used:\n%s", ci)
	}
	ci = runcmd(t, ci)
	get, check, inst := strings.Index(ci, "/run/runc \"http://172.31.1.1:8080/runc.amd64\""), strings.Index(ci, "  /run/runc\" | sha256sum -c -"), strings.Index(ci, "install -m 0755 /run/runc")
	if get < 0 || check < get || inst < check {
		t.Errorf("runc is not verified before it is installed:\n%s", ci)
	}
	if d := RuncFor("", pins, "amd64"); d.URL != "https://github.com/opencontainers/runc/releases/download/"+RuncVersion+"/runc.amd64" {
		t.Errorf("default runc URL %s", d.URL)
	}
}

// cloud-init's result with errors is a BootError quoting its output; one
// without errors, none yet (still booting) or garbage is no failure.
func TestParseBootResult(t *testing.T) {
	failed := `{"v1": {"datasource": "DataSourceHetzner", "errors": ["('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"]}}` +
		"\n== output\n/run/buildkit.tgz: FAILED\nsha256sum: WARNING: 1 computed checksum did NOT match\n"
	err := ParseBootResult("lb-1", failed)
	var b *BootError
	if !errors.As(err, &b) || b.Name != "lb-1" || len(b.Errors) != 1 || !strings.Contains(b.Output, "FAILED") {
		t.Fatalf("%#v", err)
	}
	if !strings.Contains(err.Error(), "cloud-init failed on lb-1") || !strings.Contains(err.Error(), "runcmd") || !strings.Contains(err.Error(), "did NOT match") {
		t.Errorf("message: %v", err)
	}
	for _, ok := range []string{"", `{"v1": {"errors": []}}` + "\n== output\nfine\n", "not json\n== output\n"} {
		if err := ParseBootResult("lb-1", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// What WaitReady's reading of the machine keeps: the machine unless the
// connection knew it (a pool's grant), and the counters as the build's
// baseline only when read as buildkitd first answered — a reading taken
// during a boot would stretch the first CPU interval over the boot.
func TestWaitReadyKeepsTheBaselineOnlyWhenFresh(t *testing.T) {
	out := "== memory.current\n1048576\n== memory.peak\n2097152\n== memory.events\noom_kill 3\n== cpu.stat\nusage_usec 10\n== kernel\n6.1.0\n== cgroup\ncgroup2fs\n"
	p := machineProbe{kernel: "6.1.0", cgroupVersion: 2}
	p.stats, p.statsErr = ParseStats(out)
	if p.statsErr != nil {
		t.Fatal(p.statsErr)
	}
	var c Conn
	if err := c.keep(p, false, false); err != nil || c.Kernel != "6.1.0" || c.CgroupVersion != 2 {
		t.Fatalf("machine not kept: %v %q v%d", err, c.Kernel, c.CgroupVersion)
	}
	if _, ok := c.Baseline(); ok {
		t.Error("a reading from before buildkitd answered is a baseline")
	}
	known := Conn{Kernel: "granted", CgroupVersion: 1}
	if err := known.keep(p, true, true); err != nil || known.Kernel != "granted" {
		t.Fatalf("the grant's machine replaced: %v %q", err, known.Kernel)
	}
	if s, ok := known.Baseline(); !ok || s.OOMKills != 3 || s.MemoryPeak != 2<<20 {
		t.Errorf("baseline %+v %v, want the fresh reading", s, ok)
	}
	failed := machineProbe{err: errors.New("no answer")}
	if err := known.keep(failed, true, true); err != nil {
		t.Errorf("a failed reading fails a machine the grant described: %v", err)
	}
	if err := (&Conn{}).keep(failed, false, true); err == nil {
		t.Error("a failed reading of an unknown machine passed")
	}
}
