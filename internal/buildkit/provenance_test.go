package buildkit

import (
	"errors"
	"strings"
	"testing"
)

func TestParseProvenance(t *testing.T) {
	for in, want := range map[string]string{"": ProvenanceAuto, "true": ProvenanceAuto, "1": ProvenanceAuto, "false": "", "0": "",
		"mode=min": "min", "mode=max": "max", "max": "max", "mode=max,builder-id=https://x": "max", "builder-id=https://x": ProvenanceAuto} {
		if got, err := ParseProvenance(in); err != nil || got != want {
			t.Errorf("ParseProvenance(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"mode=full", "yes please", "type=sbom"} {
		var ie *InputError
		if _, err := ParseProvenance(bad); !errors.As(err, &ie) || ie.Field != "provenance" {
			t.Errorf("ParseProvenance(%q) = %v, want an input error", bad, err)
		}
	}
}

// mode=max records build arguments: one that looks like a credential, or
// is the value of one of the build's secrets, is refused by name; mode=min
// records none and takes them.
func TestSecretLookingBuildArgsAndProvenance(t *testing.T) {
	t.Setenv("LIAN_PROV_SECRET", "hunter2-long-enough")
	for _, c := range []struct {
		args map[string]string
		bad  string
	}{
		{map[string]string{"NPM_TOKEN": "abc"}, "NPM_TOKEN"},
		{map[string]string{"DB_PASSWORD": "x"}, "DB_PASSWORD"},
		{map[string]string{"HARMLESS": "ghp_0123456789abcdefghijABCDEFGHIJ"}, "HARMLESS"},
		{map[string]string{"HARMLESS": "hunter2-long-enough"}, "HARMLESS"},
		{map[string]string{"VERSION": "1.2.3", "GOOS": "linux"}, ""},
	} {
		o := Options{BuildArgs: c.args, Secrets: []Secret{{ID: "s", Env: "LIAN_PROV_SECRET"}}, Provenance: Provenance{Mode: "max"}}
		err := o.checkProvenance()
		var ie *InputError
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.bad != "" && (!errors.As(err, &ie) || ie.Field != "build-args" || ie.Value != c.bad || !strings.Contains(ie.Msg, "mode=max")):
			t.Errorf("%v: %v, want build-args %s refused", c.args, err, c.bad)
		case c.bad != "" && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("the refusal shows the secret: %v", err)
		}
		o.Provenance.Mode = "min"
		if err := o.checkProvenance(); err != nil {
			t.Errorf("mode=min refused %v: %v", c.args, err)
		}
	}
}
