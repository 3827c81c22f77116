// Package providertest_test adds a provider the way a new one is added —
// its own package registering a factory that declares its settings — and
// finds those settings in every front door, with no other change.
package providertest_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/cli"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/gateway"
	"github.com/lian-build/action/internal/sizing"
)

type fakeCloud struct{}

func (fakeCloud) Name() string               { return "fakecloud" }
func (fakeCloud) Tiers() sizing.Table        { return sizing.HCloud }
func (fakeCloud) Options() []string          { return []string{"fakecloud-region", "fakecloud-token"} }
func (fakeCloud) Features() compute.Features { return compute.Features{} }
func (fakeCloud) Settings() []compute.Setting {
	return []compute.Setting{
		{Name: "fakecloud-region", Default: "moon-1", Help: "compute-provider fakecloud: the region"},
		{Name: "fakecloud-token", Secret: true, Env: "FAKECLOUD_TOKEN", Help: "compute-provider fakecloud: the API token"},
	}
}
func (fakeCloud) New(cfg compute.Config) (compute.Provider, error) {
	return nil, &compute.OptionError{Option: "fakecloud-region", Err: errors.New("region " + cfg.Options["fakecloud-region"] + " with a token of " + map[bool]string{true: "some", false: "no"}[cfg.Options["fakecloud-token"] != ""] + " length")}
}

func init() { compute.Register(fakeCloud{}) }

func TestANewProviderIsInEveryFrontDoor(t *testing.T) {
	table := frontdoor.SettingsTable()
	for door, names := range map[string][]string{
		"Action inputs":   frontdoor.DoorNames(table, func(s frontdoor.Setting) string { return s.Input }),
		"Woodpecker keys": frontdoor.DoorNames(table, func(s frontdoor.Setting) string { return s.Key }),
		"CLI flags":       frontdoor.DoorNames(table, func(s frontdoor.Setting) string { return s.Flag }),
	} {
		joined := " " + strings.Join(names, " ") + " "
		for _, want := range map[string][]string{
			"Action inputs": {"fakecloud-region", "fakecloud-token"}, "Woodpecker keys": {"fakecloud_region", "fakecloud_token"},
			"CLI flags": {"fakecloud-region", "fakecloud-token-file"},
		}[door] {
			if !strings.Contains(joined, " "+want+" ") {
				t.Errorf("%s lack %s", door, want)
			}
		}
	}
	if in := frontdoor.ActionInputs(table); !strings.Contains(in, "fakecloud-token:\n    description: \"Compute-provider fakecloud: the API token (masked)\"") || !strings.Contains(in, "default: \"moon-1\"") {
		t.Errorf("action.yml's inputs lack the provider's:\n%s", in)
	}
	if md := frontdoor.MarkdownTable(table); !strings.Contains(md, "| fakecloud-region | `--fakecloud-region` | `fakecloud-region` | `fakecloud_region` | text | `moon-1` |") {
		t.Error("the README's table lacks the provider's settings")
	}
	var out, errb bytes.Buffer
	cli.Main(context.Background(), []string{"build", "--help"}, &out, &errb)
	if help := out.String() + errb.String(); !strings.Contains(help, "-fakecloud-region") || !strings.Contains(help, "-fakecloud-token-file") {
		t.Errorf("lian-build build --help lacks the provider's flags:\n%s", help)
	}
	_, err := gateway.ParseFlags(context.Background(), []string{"--help"}, func(string) string { return "" })
	var help *gateway.HelpRequested
	if !errors.As(err, &help) || !strings.Contains(help.Usage, "-fakecloud-region") {
		t.Errorf("the gateway lacks the provider's flags: %v", err)
	}
	// The provider gets its settings, named as the user wrote them.
	s := frontdoor.Settings{ComputeProvider: "fakecloud", Names: frontdoor.Names(table, frontdoor.Setting.CLIName)}
	s.SetOption("fakecloud-region", "mars-2")
	t.Setenv("FAKECLOUD_TOKEN", "t0k")
	_, err = s.OpenProvider()
	if err == nil || !strings.Contains(err.Error(), "--fakecloud-region") || !strings.Contains(err.Error(), "region mars-2 with a token of some length") {
		t.Errorf("the provider did not get its settings: %v", err)
	}
}
