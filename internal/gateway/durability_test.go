package gateway

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/testenv"
)

// listeningRE finds the address in the gateway's "gateway listening" log line.
var listeningRE = regexp.MustCompile(`"msg":"gateway listening","addr":"([^"]+)"`)

// kill -9 the gateway with builds queued and one running; restart it on the
// same data dir: every accepted delivery ends in exactly one completed check
// run, and no runner is left behind.
func TestKill9AndRestart(t *testing.T) {
	bk := testenv.Require(t)
	bin := filepath.Join(t.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/gateway").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	gh, gs, reg := newFakeGitHub(t), newGitServer(t), testenv.StartRegistry(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret, key := write("secret", []byte(testSecret)), write("key.pem", testKey(t))
	state, data := filepath.Join(dir, "runners"), filepath.Join(dir, "data")
	// Each gateway listens on a port of its own choosing and logs it.
	start := func(name string) (*exec.Cmd, string) {
		cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--webhook-secret-file", secret, "--app-id", "42", "--private-key-file", key,
			"--github-url", gs.srv.URL, "--github-api-url", gh.srv.URL, "--data-dir", data, "--state-dir", state, "--buildkitd", bk,
			"--registry", reg.Host, "--insecure-registry", reg.Host, "--build-context", "base=oci-layout://"+testenv.BaseLayout(t),
			"--concurrency", "1", "--ack-wait", "3s", "--branches", "b1,b2,b3", "--progress-every", "1s")
		logf, _ := os.Create(filepath.Join(dir, name+".log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Whatever happens to the test, no gateway outlives it, and no runner
		// of a killed one: the reaper of the provider cleans up after it.
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			if prov, err := local.New(local.Options{Buildkitd: bk, StateDir: state}); err == nil {
				_, _ = prov.GC(context.Background())
			}
		})
		for i := 0; ; i++ {
			b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			if m := listeningRE.FindSubmatch(b); m != nil {
				return cmd, string(m[1])
			}
			if i > 300 {
				t.Fatalf("%s did not listen:\n%s", name, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	a, addr := start("first")
	g := &gw{url: "http://" + addr}
	var shas []string
	for i := 1; i <= 3; i++ {
		sha := gs.commit(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM base\nRUN echo build %d && sleep 3\n", i)})
		shas = append(shas, sha)
		body := fixture(t, "push/with-installation.payload.json", func(m map[string]any) {
			m["ref"], m["after"], m["deleted"] = fmt.Sprintf("refs/heads/b%d", i), sha, false
		})
		if code, resp := g.post(t, "push", fmt.Sprintf("durable-%d", i), body, ""); code != 202 {
			t.Fatalf("push %d: %d %s", i, code, resp)
		}
	}
	// Wait until one build runs, then kill -9.
	for deadline := time.Now().Add(60 * time.Second); ; {
		if len(testenv.LeaseIDs(state)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no build started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()

	b, _ := start("second")
	done := map[int64]bool{}
	for len(done) < 3 {
		select {
		case id := <-gh.completed:
			if done[id] {
				t.Fatalf("check run %d completed twice", id)
			}
			done[id] = true
		case <-time.After(2 * time.Minute):
			log, _ := os.ReadFile(filepath.Join(dir, "second.log"))
			t.Fatalf("%d of 3 builds completed after the restart\n%s", len(done), log)
		}
	}
	// Give a duplicate completion the chance to show up.
	select {
	case id := <-gh.completed:
		t.Fatalf("an extra completion of check run %d", id)
	case <-time.After(4 * time.Second):
	}
	gh.mu.Lock()
	created := 0
	for id, runs := range gh.checkRuns {
		if _, ok := runs[0]["head_sha"]; ok {
			created++
		}
		if last := runs[len(runs)-1]; last["conclusion"] != "success" {
			t.Errorf("check run %d: %v", id, last["conclusion"])
		}
	}
	gh.mu.Unlock()
	if created != 3 {
		t.Errorf("%d check runs created for 3 deliveries", created)
	}
	if err := b.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "second.log"))
		t.Errorf("gateway exit after SIGTERM: %v\n%s", err, log)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "second.log")); strings.Contains(string(log), "nats connection closed") {
		t.Errorf("a clean stop warns of its own closed connection:\n%s", log)
	}
	testenv.AssertNoRunners(t, state)
	if p := testenv.ProcessesMentioning(state); len(p) > 0 || strings.Contains(strings.Join(p, ""), "buildkitd") {
		t.Errorf("processes left: %v", p)
	}
}
