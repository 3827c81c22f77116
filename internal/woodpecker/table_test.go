package woodpecker

import (
	"regexp"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/cli"
	"github.com/lian-build/action/internal/frontdoor"
)

// A setting added to the table only appears in the CLI's help, in
// action.yml's inputs, in the plugin's settings and in the README's table.
func TestASettingAddedToTheTableReachesEveryDoor(t *testing.T) {
	table := append(frontdoor.SettingsTable(), frontdoor.Setting{
		Name: "frobnication", Flag: "frobnicate", Input: "frobnicate", Key: "frobnicate", Kind: frontdoor.KindText,
		Help: "how hard to frobnicate", Field: func(s *frontdoor.Settings) any { return &s.Target },
	})
	if u := cli.BuildUsage(table); !regexp.MustCompile(`\n      --frobnicate string +how hard to frobnicate\n`).MatchString(u) {
		t.Errorf("CLI help lacks the flag:\n%s", u)
	}
	if y := frontdoor.ActionInputs(table); !strings.Contains(y, "  frobnicate:\n    description: \"How hard to frobnicate\"\n") {
		t.Errorf("action.yml inputs lack it:\n%s", y)
	}
	if m := frontdoor.MarkdownTable(table); !strings.Contains(m, "| frobnication | `--frobnicate` | `frobnicate` | `frobnicate` | text |") {
		t.Errorf("README table lacks it:\n%s", m)
	}
	env := Env{"PLUGIN_FROBNICATE": "hard", "CI_REPO": "o/r"}
	s, err := settingsFrom(env, table)
	if err != nil || s.Target != "hard" || !s.Given["frobnication"] {
		t.Fatalf("plugin: %v, target %q, given %v", err, s.Target, s.Given)
	}
	// Without the entry the plugin refuses the key, with a suggestion from the table.
	if _, err := settingsFrom(Env{"PLUGIN_FROBNICATE": "hard"}, frontdoor.SettingsTable()); err == nil || !strings.Contains(err.Error(), "not a lian-build setting") {
		t.Fatalf("unknown key accepted: %v", err)
	}
	if _, err := settingsFrom(Env{"PLUGIN_RUNER_TYPE": "cax11"}, frontdoor.SettingsTable()); err == nil || !strings.Contains(err.Error(), "did you mean runner_type?") {
		t.Fatalf("no suggestion: %v", err)
	}
}
