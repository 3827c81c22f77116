package hcloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

// `runners image --provider hcloud`: a stock server installs the pinned
// buildkitd, is prepared and snapshotted with the runner-image label, and
// goes with its key; servers then boot the newest runner image by default
// (not the stock image, nor an older or other-version snapshot).
func TestRunnerImageIsMadeAndBooted(t *testing.T) {
	w := newWorld(t, worldConfig{})
	pins, _ := hcloudPins()
	p, err := hcloud.New(hcloud.Settings{Token: token, Endpoint: w.fake.Endpoint(), PollEvery: 100 * time.Millisecond, BuildkitPins: pins})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.MakeImage(context.Background()); err != nil {
		t.Fatalf("first image: %v", err)
	}
	img, err := p.MakeImage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	snaps := w.fake.Snapshots()
	if len(snaps) != 2 || img.Labels[hcloud.RunnerImageLabel] != hcloud.RunnerImageVersion || !strings.Contains(img.Description, "BuildKit") {
		t.Fatalf("snapshots %+v, image %+v", snaps, img)
	}
	creates := serverCreates(t, w)
	stockARM := fakehcloud.Images[0] // debian-12, arm
	if len(creates) != 2 || creates[0].Image.ID != stockARM.ID || *stockARM.Name != hcloud.StockImage || !strings.Contains(creates[0].UserData, "sha256sum -c") {
		t.Errorf("the image's server did not boot the stock image with the pinned download: %+v", creates)
	}
	w.assertNothingLeft(t)

	// A build now boots the newest runner image, without a download.
	if _, err, progress := w.build(t, "FROM base\nRUN echo from-image\n"); err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	creates = serverCreates(t, w)
	last := creates[len(creates)-1]
	if strconv.FormatInt(last.Image.ID, 10) != img.ID && last.Image.Name != img.ID {
		t.Errorf("the build's server booted %+v, want the newest runner image %s", last.Image, img.ID)
	}
	w.assertNothingLeft(t)
}

// The image's server needs the pinned download: without a pin the image is
// refused before anything is created, naming the setting.
func TestRunnerImageNeedsAPin(t *testing.T) {
	w := newWorld(t, worldConfig{})
	p, err := hcloud.New(hcloud.Settings{Token: token, Endpoint: w.fake.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.MakeImage(context.Background())
	var oe *compute.OptionError
	if !errors.As(err, &oe) || oe.Option != hcloud.OptBuildkitSHA256 {
		t.Fatalf("err %v: want one naming %s", err, hcloud.OptBuildkitSHA256)
	}
	if s, k := w.fake.Counts(); s != 0 || k != 0 {
		t.Errorf("a refused image made %d servers, %d keys", s, k)
	}
}

type serverCreate struct {
	Image    schema.IDOrName `json:"image"`
	UserData string          `json:"user_data"`
}

func serverCreates(t *testing.T, w *world) []serverCreate {
	t.Helper()
	var out []serverCreate
	for _, r := range w.fake.Requests() {
		if r.Method == "POST" && r.Path == "/servers" {
			var c serverCreate
			if err := json.Unmarshal([]byte(r.Body), &c); err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
	}
	return out
}

func hcloudPins() (map[string]string, error) {
	return map[string]string{"arm64": strings.Repeat("ab", 32), "amd64": strings.Repeat("cd", 32)}, nil
}
