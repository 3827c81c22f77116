package launch

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/buildkit"
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
