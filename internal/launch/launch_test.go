package launch

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/pipeline"
)

func TestBuildThatCannotOpenRunsNothing(t *testing.T) {
	started := false
	s := frontdoor.Settings{ComputeProvider: "aws"}
	res, err := Build(context.Background(), s, pipeline.Request{Workspace: "app"}, BuildOptions{Starting: func() { started = true }})
	var ie *buildkit.InputError
	if !errors.As(err, &ie) || ie.Field != "compute-provider" || !strings.Contains(ie.Msg, "available: docker, hcloud, local, proxmox, vm-pool") {
		t.Fatalf("err = %v, want an InputError naming compute-provider and the providers", err)
	}
	// hcloud without a token names the setting that gives one.
	t.Setenv("HCLOUD_TOKEN", "")
	_, err = Build(context.Background(), frontdoor.Settings{ComputeProvider: "hcloud"}, pipeline.Request{Workspace: "app"}, BuildOptions{Starting: func() { started = true }})
	if !errors.As(err, &ie) || ie.Field != "hcloud-token" {
		t.Fatalf("err = %v, want an InputError naming hcloud-token", err)
	}
	if res.BuildID != "" || started {
		t.Fatalf("something ran: result %+v, Starting called %v", res, started)
	}
}

// A provider with machines of one architecture refuses a platform it does
// not run natively, naming the setting and the one that would emulate it,
// before anything runs; with --emulate-platforms the one runner builds all.
func TestForeignPlatformRefusedWithoutEmulation(t *testing.T) {
	foreign := map[string]string{"x86": "linux/arm64", "arm": "linux/amd64"}[compute.HostArch()]
	names := frontdoor.Names(frontdoor.SettingsTable(), frontdoor.Setting.CLIName)
	for _, provider := range []string{"local", "docker"} {
		s := frontdoor.Settings{ComputeProvider: provider, Platforms: []string{foreign}, Names: names}
		_, err := Build(context.Background(), s, pipeline.Request{Workspace: "app", Build: buildkit.Options{Platforms: s.Platforms}}, BuildOptions{})
		var ie *buildkit.InputError
		if !errors.As(err, &ie) || ie.Field != "--platform" || ie.Value != foreign || !strings.Contains(ie.Msg, "the "+provider+" provider builds natively only for") || !strings.Contains(ie.Msg, "--emulate-platforms") {
			t.Errorf("%s: %v", provider, err)
		}
	}
	legs, err := split(frontdoor.Settings{ComputeProvider: "local", EmulatePlatforms: true}, pipeline.Request{Build: buildkit.Options{Platforms: []string{"linux/amd64", "linux/arm64"}}})
	if err != nil || len(legs) != 1 || len(legs[0].Emulated) != 1 {
		t.Errorf("with emulation: %+v %v", legs, err)
	}
}

// A build split by architecture pushes an index: it needs tags and --push
// and takes no other output.
func TestLegsNeedAPush(t *testing.T) {
	s := frontdoor.Settings{ComputeProvider: "hcloud", Names: frontdoor.Names(frontdoor.SettingsTable(), frontdoor.Setting.CLIName)}
	for _, o := range []buildkit.Options{
		{Platforms: []string{"linux/amd64", "linux/arm64"}},
		{Platforms: []string{"linux/amd64", "linux/arm64"}, Tags: []string{"r.io/a:1"}},
		{Platforms: []string{"linux/amd64", "linux/arm64"}, Tags: []string{"r.io/a:1"}, Push: true, Outputs: []buildkit.Output{{Type: "local", Dest: "out"}}},
	} {
		_, err := Build(context.Background(), s, pipeline.Request{Workspace: "app", Build: o}, BuildOptions{})
		var ie *buildkit.InputError
		if !errors.As(err, &ie) || ie.Field != "--platform" || !strings.Contains(ie.Msg, "give -t and --push") {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
