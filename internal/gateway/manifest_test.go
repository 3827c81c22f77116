package gateway

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lian-build/action/internal/testenv"
)

// app.yml asks for exactly the permissions the gateway uses and for every
// event the router builds from; an event the router does not know is
// ignored with a reason, never silently.
func TestAppManifestMatchesTheGateway(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "app.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		HookAttributes struct {
			URL string `yaml:"url"`
		} `yaml:"hook_attributes"`
		Permissions map[string]string `yaml:"default_permissions"`
		Events      []string          `yaml:"default_events"`
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("app.yml: %v", err)
	}
	want := map[string]string{"checks": "write", "contents": "read", "pull_requests": "read", "issues": "write", "metadata": "read"}
	if len(m.Permissions) != len(want) {
		t.Errorf("permissions %v, want exactly %v", m.Permissions, want)
	}
	for k, v := range want {
		if m.Permissions[k] != v {
			t.Errorf("permission %s: %q, want %q", k, m.Permissions[k], v)
		}
	}
	for _, e := range []string{"push", "issue_comment", "check_run", "pull_request"} {
		if !slices.Contains(m.Events, e) {
			t.Errorf("app.yml does not subscribe to %s", e)
		}
	}
	if !strings.HasSuffix(m.HookAttributes.URL, "/webhooks/github") {
		t.Errorf("hook url %q: the gateway serves /webhooks/github", m.HookAttributes.URL)
	}
	for _, e := range m.Events {
		d, err := Route(e, "d1", []byte(`{"repository":{"name":"r","owner":{"login":"o"}},"installation":{"id":1}}`), RouteConfig{})
		if err == nil && d.Job == nil && d.Ignore == "" {
			t.Errorf("event %s is neither routed nor ignored with a reason", e)
		}
	}
}
