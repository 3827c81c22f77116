package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/pool"
)

// Bad pool invocations are usage errors that name the flag.
func TestPoolUsage(t *testing.T) {
	t.Setenv("LIAN_POOL_TOKEN", "")
	t.Setenv("LIAN_POOL_URL", "")
	t.Setenv("HCLOUD_TOKEN", "")
	tok := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tok, []byte("t0k"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pool"}, "a command is needed: drain|ls|resume|serve"},
		{[]string{"pool", "sevre"}, "did you mean serve?"},
		{[]string{"pool", "swim"}, `unknown command "swim"`},
		{[]string{"pool", "ls"}, "--pool-url"},
		{[]string{"pool", "drain", "--pool-url", "http://127.0.0.1:1"}, "--pool-token-file"},
		{[]string{"pool", "serve"}, "--token-file (or $LIAN_POOL_TOKEN) is required"},
		{[]string{"pool", "serve", "--nats-url", "nats://127.0.0.1:1"}, "--token-file (or $LIAN_POOL_TOKEN) is required"},
		{[]string{"pool", "serve", "--nats-url", "nats://127.0.0.1:1", "--token-file", tok}, "--hcloud-token-file (or $HCLOUD_TOKEN) is required"},
		{[]string{"pool", "serve", "--nats-url", "nats://127.0.0.1:1", "--token-file", tok, "--hcloud-token-file", tok, "--max-vms", "cax11=two"}, `--max-vms: "cax11=two": want TIER=N`},
		{[]string{"pool", "serve", "--nats-url", "nats://127.0.0.1:1", "--token-file", tok, "--hcloud-token-file", tok, "--min-idle", "cax99=1"}, "--min-idle"},
		{[]string{"pool", "serve", "--nats-url", "nats://127.0.0.1:1", "--token-file", tok, "--hcloud-token-file", tok, "--warm-bytes", "lots"}, `--warm-bytes "lots": want a size`},
		{[]string{"pool", "serve", "--nats-url", "nats://127.0.0.1:1", "--token-file", tok, "--hcloud-token-file", tok, "--warm-bytes", "0"}, `--warm-bytes "0"`},
		{[]string{"pool", "serve", "--nats-url", "nats://127.0.0.1:1", "--token-file", tok, "--hcloud-token-file", tok, "--ssh-timeout", "1s"}, "--ssh-timeout 1s: want at least 10s"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), c.args, &out, &errb)
		if code != ExitUsage || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

func TestCatalogMode(t *testing.T) {
	for _, c := range []struct {
		provider, mode, want, err string
	}{{"", "docker-local", "docker", ""}, {"local", "docker-local", "docker", ""}, {"", "local", "local", ""},
		{"hcloud", "docker-local", "", "not --provider hcloud"}, {"", "vm", "", `--mode "vm"`}} {
		s := frontdoor.Settings{ComputeProvider: c.provider}
		err := applyMode(&s, c.mode)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: err %v", c, err)
			}
			continue
		}
		if err != nil || s.ComputeProvider != c.want {
			t.Errorf("%+v: provider %q, err %v", c, s.ComputeProvider, err)
		}
	}
}

// pool ls says what an idle VM is ready for.
func TestReadyText(t *testing.T) {
	for _, c := range []struct {
		r    *pool.Ready
		want string
	}{
		{nil, "-"},
		{&pool.Ready{KeyNonce: "n"}, "no state"},
		{&pool.Ready{Tree: "r-1"}, "empty tree"},
		{&pool.Ready{Tree: "r-1", Namespace: "ci/app", Generation: 3}, "ci/app@3"},
	} {
		if got := readyText(c.r); got != c.want {
			t.Errorf("readyText(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}
