package gateway

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/testenv"
)

func writeConfig(t *testing.T, body string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"secret": "s3cret", "key.pem": string(testKey(t))} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	body = strings.ReplaceAll(body, "DIR", dir)
	path := filepath.Join(dir, "gateway.ncl")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

const goodConfig = `{
  listen = "127.0.0.1:9090",
  app_id = 42,
  private_key_file = "DIR/key.pem",
  webhook_secret_file = "DIR/secret",
  data_dir = "DIR/data",
  concurrency = 3,
  ack_wait = "45s",
  branches = ["main", "release"],
  build_tags = true,
  insecure_registry = ["10.0.0.5:5000"],
  provider = 'local,
  build_context = ["base=oci-layout:///srv/base", "tools=/srv/tools"],
  repositories = [
    { repository = "octo/app", workspace = "app", runner_type = 'cax31, platforms = ["linux/amd64", "linux/arm64"] },
  ],
}
`

// The file gives every value; LIAN_GATEWAY_* variables override it, and
// flags override both.
func TestConfigFileFlagsAndEnvironment(t *testing.T) {
	path, _ := writeConfig(t, goodConfig)
	env := map[string]string{"LIAN_GATEWAY_CONCURRENCY": "5"}
	c, err := ParseFlags(context.Background(), []string{"--config", path, "--listen", ":9999"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":9999" || c.Concurrency != 5 || c.AppID != 42 || c.AckWait != 45*time.Second || !c.Route.BuildTags {
		t.Fatalf("listen %q, concurrency %d, app %d, ack wait %s, build tags %v", c.Listen, c.Concurrency, c.AppID, c.AckWait, c.Route.BuildTags)
	}
	if strings.Join(c.Route.Branches, ",") != "main,release" || len(c.Build.BuildContexts) != 2 || strings.Join(c.Build.Insecure, ",") != "10.0.0.5:5000" {
		t.Fatalf("lists: %v %v %v", c.Route.Branches, c.Build.BuildContexts, c.Build.Insecure)
	}
	if string(c.WebhookSecret) != "s3cret" || len(c.Repositories) != 1 || c.Repositories[0].RunnerType != "cax31" || strings.Join(c.Repositories[0].Platforms, ",") != "linux/amd64,linux/arm64" {
		t.Fatalf("secret %q, repositories %+v", c.WebhookSecret, c.Repositories)
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"check-config", path}, func(string) string { return "" }, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok") {
		t.Fatalf("check-config: %d %s%s", code, out.String(), errb.String())
	}
}

// A typo, a secret value instead of its file, a bad value and a bad
// repository are refused with the file's line and column.
func TestConfigFileErrorsHavePositions(t *testing.T) {
	for _, tt := range []struct{ name, edit, want string }{
		{"typo", `concurrency = 3,`, `gateway.ncl:7:3: concurency: unknown field (did you mean "concurrency"?)`},
		{"secret value", `concurrency = 3,`, `gateway.ncl:7:3: webhook_secret: unknown field`},
		{"bad duration", `ack_wait = "45s",`, `gateway.ncl:8:14: ack_wait: invalid value "45 seconds" for --ack-wait`},
		{"bad enum", `provider = 'local,`, `gateway.ncl:12:14: provider: 'aws is not one of 'docker, 'hcloud, 'local, 'proxmox, 'vm-pool`},
		{"bad repository", `{ repository = "octo/app"`, `repositories[0].repository: "octo": want owner/repo`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := map[string]string{
				"typo":           `concurency = 3,`,
				"secret value":   `webhook_secret = "s3cret",`,
				"bad duration":   `ack_wait = "45 seconds",`,
				"bad enum":       `provider = 'aws,`,
				"bad repository": `{ repository = "octo"`,
			}[tt.name]
			path, _ := writeConfig(t, strings.Replace(goodConfig, tt.edit, bad, 1))
			var out, errb bytes.Buffer
			code := Main([]string{"check-config", path}, func(string) string { return "" }, &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("check-config: exit %d\n%s", code, errb.String())
			}
		})
	}
}

// The gateway's builds can lease runners from a VM pool.
func TestConfigFileVMPool(t *testing.T) {
	body := strings.Replace(goodConfig, "provider = 'local,", "provider = 'vm-pool,\n  pool_url = \"http://pool:8090\",\n  pool_token_file = \"DIR/pool-token\",", 1)
	path, _ := writeConfig(t, body)
	c, err := ParseFlags(context.Background(), []string{"--config", path}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Build.ComputeProvider != "vm-pool" || c.Build.Option("pool-url") != "http://pool:8090" || !strings.HasSuffix(c.Build.Option("pool-token-file"), "/pool-token") {
		t.Fatalf("provider %q, pool %q %q", c.Build.ComputeProvider, c.Build.Option("pool-url"), c.Build.Option("pool-token-file"))
	}
}

// hostileConfig is one row of testdata/hostile/gateway-config.json: fields
// of the good configuration replaced (or added) with Nickel text.
type hostileConfig struct {
	Name  string            `json:"name"`
	Set   map[string]string `json:"set"`
	Exit  int               `json:"exit"`
	Words []string          `json:"words"`
}

// check-config refuses what the gateway's start refuses, naming the
// setting, and says ok only for what it starts with.
func TestHostileGatewayConfig(t *testing.T) {
	rows := testenv.HostileRows[hostileConfig](t, "gateway-config.json")
	for _, tt := range rows {
		t.Run(tt.Name, func(t *testing.T) {
			body := goodConfig
			if _, ok := tt.Set["repositories"]; ok {
				body = strings.Replace(body, "  repositories = [\n    { repository = \"octo/app\", workspace = \"app\", runner_type = 'cax31, platforms = [\"linux/amd64\", \"linux/arm64\"] },\n  ],\n", "", 1)
			}
			for field, v := range tt.Set {
				lines := strings.Split(body, "\n")
				found := false
				for i, l := range lines {
					if strings.HasPrefix(strings.TrimSpace(l), field+" = ") && !found {
						lines[i], found = "  "+field+" = "+v+",", true
					}
				}
				body = strings.Join(lines, "\n")
				if !found {
					body = strings.Replace(body, "{\n", "{\n  "+field+" = "+v+",\n", 1)
				}
			}
			path, _ := writeConfig(t, body)
			var out, errb bytes.Buffer
			code := Main([]string{"check-config", path}, func(string) string { return "" }, &out, &errb)
			if code != tt.Exit {
				t.Fatalf("exit %d, want %d\n%s%s\n%s", code, tt.Exit, out.String(), errb.String(), body)
			}
			for _, w := range tt.Words {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
			_, err := ParseFlags(context.Background(), []string{"--config", path}, func(string) string { return "" })
			if (err == nil) != (tt.Exit == 0) {
				t.Errorf("the gateway's start and check-config disagree: start says %v", err)
			}
		})
	}
}

// The configuration file's schema is made from the gateway's flags, so
// every flag (docker's and Proxmox's included) has its field and every
// field its flag; the file in the repository is the generated one.
func TestSchemaIsGenerated(t *testing.T) {
	path := filepath.Join(strings.Repeat("../", 2), SchemaFile)
	want := Schema()
	if os.Getenv("LIAN_UPDATE_SCHEMA") == "1" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("%s is not what the gateway's flags make: LIAN_UPDATE_SCHEMA=1 go test ./internal/gateway -run TestSchemaIsGenerated", SchemaFile)
	}
	for _, field := range []string{"docker_host | String", "proxmox_endpoint | String", "hcloud_buildkit_sha256 | String", "pool_url | String",
		"hcloud_location | Array String", "branches | Array String", "app_id | Number", "concurrency | Number", "build_tags | Bool",
		"provider | [| 'docker, 'hcloud, 'local, 'proxmox, 'vm-pool |]", "registry_provider | [| 'zot, 'harbor, 'ghcr, 'dockerhub, 'generic |]"} {
		if !strings.Contains(want, "    "+field+" | optional,\n") {
			t.Errorf("the schema lacks %q", field)
		}
	}
}
