package frontdoor

import (
	"context"
	"errors"
	"testing"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/pipeline"
)

func TestBuildThatCannotOpenRunsNothing(t *testing.T) {
	started := false
	s := Settings{ComputeProvider: "hcloud"}
	res, err := s.Build(context.Background(), pipeline.Request{Workspace: "app"}, BuildOptions{Starting: func() { started = true }})
	var ie *buildkit.InputError
	if !errors.As(err, &ie) || ie.Field != "compute-provider" {
		t.Fatalf("err = %v, want an InputError naming compute-provider", err)
	}
	if res.BuildID != "" || started {
		t.Fatalf("something ran: result %+v, Starting called %v", res, started)
	}
}
