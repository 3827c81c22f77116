package bench

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/runnerhost"
	"github.com/lian-build/action/internal/testenv/vmhost"
)

// BenchmarkVMSpawnPhases: a Hetzner runner through the fake API on a
// netns runner host (this kernel, no boot, no cloud-init) and on a VM
// runner host (a real boot of Debian's cloud kernel and the real
// cloud-init, emulated when KVM is not usable), in one run. Besides
// lian-build's split (create, boot: SSH answers, ready: buildkitd
// answers), the VM's own clock: kernel and initrd to userspace, and when
// each cloud-init stage finished (init-local; init: metadata read, network
// up; config; final: the user-data's downloads and buildkitd started).
func BenchmarkVMSpawnPhases(b *testing.B) {
	const token = "bench-vm-token"
	b.Run("netns", func(b *testing.B) {
		testenv.StartSSHD(b)
		fake := fakehcloud.New(token, &runnerhost.Hosts{Options: testenv.HostOptions(b, nil), Dir: b.TempDir()})
		b.Cleanup(fake.Close)
		prov, err := hcloud.New(hcloud.Settings{Token: token, Endpoint: fake.Endpoint()})
		if err != nil {
			b.Fatal(err)
		}
		spawnPhases(b, prov, nil)
	})
	b.Run("vm", func(b *testing.B) {
		dl := testenv.RunnerDownloads(b)
		hosts := testenv.VMHosts(b, dl.Port)
		hosts.MemoryMiB = map[string]int{"cpx21": 1024}
		fake := fakehcloud.New(token, hosts)
		b.Cleanup(fake.Close)
		prov, err := hcloud.New(dl.HCloud(hcloud.Settings{Token: token, Endpoint: fake.Endpoint()}))
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("accel %s", vmhost.Accel(context.Background(), hosts.Image))
		spawnPhases(b, prov, hosts)
	})
}

// spawnPhases spawns and destroys runners, reporting the median of each
// phase; with hosts, also the guest's own phases, read through its agent.
func spawnPhases(b *testing.B, prov compute.Provider, hosts *vmhost.Hosts) {
	phases := map[string][]time.Duration{}
	var order []string
	add := func(name string, d time.Duration) {
		if _, ok := phases[name]; !ok {
			order = append(order, name)
		}
		phases[name] = append(phases[name], d)
	}
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		r, err := prov.Spawn(context.Background(), sizing.HCloud[0], compute.Lease{ID: fmt.Sprintf("bench-vm-%d-%d", os.Getpid(), i), TTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		info := r.Info()
		add("spawn", time.Since(start))
		add("create", time.Duration(info.Spawn.CreateMS)*time.Millisecond)
		add("boot-to-ssh", time.Duration(info.Spawn.BootMS)*time.Millisecond)
		add("ssh-to-ready", time.Duration(info.Spawn.ReadyMS)*time.Millisecond)
		if hosts != nil {
			for name, d := range guestPhases(b, hosts, serverID(b, info.Server)) {
				add(name, d)
			}
		}
		if err := r.Destroy(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	for _, name := range order {
		b.ReportMetric(ms(median(phases[name])), name+"-ms")
	}
}

var serverIDRE = regexp.MustCompile(`\(id (\d+)`)

func serverID(b *testing.B, server string) int64 {
	m := serverIDRE.FindStringSubmatch(server)
	if m == nil {
		b.Fatalf("no server id in %q", server)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

// guestScript prints the guest's phases since its kernel started, in ms:
// systemd's kernel, initrd and userspace times, and the end of each
// cloud-init stage (status.json holds their epoch times).
const guestScript = `systemd-analyze time 2>/dev/null | head -1
python3 - <<'PY'
import json, time
boot = time.time() - float(open("/proc/uptime").read().split()[0])
st = json.load(open("/run/cloud-init/status.json"))["v1"]
for k in ("init-local", "init", "modules-config", "modules-final"):
    if st.get(k) and st[k].get("finished"):
        print("cloud-init-%s %d" % (k, (st[k]["finished"] - boot) * 1000))
PY`

var systemdRE = regexp.MustCompile(`([\d.]+)(ms|s|min) \((kernel|initrd|userspace)\)`)

func guestPhases(b *testing.B, hosts *vmhost.Hosts, id int64) map[string]time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := hosts.Run(ctx, id, guestScript)
	if err != nil {
		b.Fatalf("guest phases: %v: %s", err, out)
	}
	got := map[string]time.Duration{}
	for _, m := range systemdRE.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "min": time.Minute}[m[2]]
		got["guest-"+m[3]] = time.Duration(v * float64(unit))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "cloud-init-") {
			v, _ := strconv.Atoi(f[1])
			got["guest-"+f[0]] = time.Duration(v) * time.Millisecond
		}
	}
	return got
}
