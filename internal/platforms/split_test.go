package platforms

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	both, x86 := []string{"arm", "x86"}, []string{"x86"}
	for _, c := range []struct {
		name   string
		in     Input
		want   []Leg
		errHas string
	}{
		{"none", Input{Native: x86}, []Leg{{}}, ""},
		{"one native", Input{Platforms: []string{"linux/amd64"}, Native: x86}, []Leg{{Arch: "x86", Platforms: []string{"linux/amd64"}}}, ""},
		{"two on a two-arch provider", Input{Platforms: []string{"linux/amd64", "linux/arm64"}, Native: both},
			[]Leg{{Arch: "x86", Platforms: []string{"linux/amd64"}}, {Arch: "arm", Platforms: []string{"linux/arm64"}}}, ""},
		{"same arch stays one leg", Input{Platforms: []string{"linux/amd64", "linux/386"}, Native: both},
			[]Leg{{Arch: "x86", Platforms: []string{"linux/amd64", "linux/386"}}}, ""},
		{"foreign refused", Input{Platforms: []string{"linux/amd64", "linux/arm64"}, Native: x86, Provider: "local"}, nil,
			"linux/arm64: the local provider builds natively only for linux/amd64; --emulate-platforms"},
		{"foreign emulated on the native leg", Input{Platforms: []string{"linux/amd64", "linux/arm64"}, Native: x86, Emulate: true},
			[]Leg{{Arch: "x86", Platforms: []string{"linux/amd64", "linux/arm64"}, Emulated: []string{"linux/arm64"}}}, ""},
		{"only foreign, emulated", Input{Platforms: []string{"linux/riscv64"}, Native: both, Emulate: true},
			[]Leg{{Arch: "arm", Platforms: []string{"linux/riscv64"}, Emulated: []string{"linux/riscv64"}}}, ""},
		{"no native machine at all", Input{Platforms: []string{"linux/riscv64"}, Native: both, Provider: "hcloud"}, nil, "use a provider that has such machines"},
	} {
		got, err := Split(c.in)
		if c.errHas != "" {
			var se *SplitError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.errHas)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	if n := (Leg{Platforms: []string{"linux/arm64"}}).Name(); n != "arm64" {
		t.Errorf("Name = %q", n)
	}
}
