package buildkit

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSBOM(t *testing.T) {
	const pinned = "127.0.0.1:5000/tools/lian-sbom-scanner@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		in, scanner, want, field string
	}{
		{"", pinned, "", ""},
		{"false", pinned, "", ""},
		{"true", pinned, pinned, ""},
		{"generator=" + pinned, "", pinned, ""},
		{"true", "", "", "sbom-scanner"},
		{"true", "registry.example/scanner:v1", "", "sbom-scanner"},
		{"generator=docker/buildkit-syft-scanner:stable-1", pinned, "", "sbom"},
		{"generator=", pinned, "", "sbom"},
		{"spdx", pinned, "", "sbom"},
	} {
		got, err := ParseSBOM(c.in, c.scanner)
		var ie *InputError
		switch {
		case c.field == "" && (err != nil || got.Generator != c.want):
			t.Errorf("ParseSBOM(%q, %q) = %+v, %v; want %q", c.in, c.scanner, got, err, c.want)
		case c.field != "" && (!errors.As(err, &ie) || ie.Field != c.field):
			t.Errorf("ParseSBOM(%q, %q): %v; want an error naming %s", c.in, c.scanner, err, c.field)
		}
	}
	attrs := map[string]string{}
	SBOM{Generator: pinned}.attrs(attrs)
	if attrs["attest:sbom"] != "generator="+pinned {
		t.Errorf("attrs: %v", attrs)
	}
	if _, err := ParseSBOM("true", ""); err == nil || !strings.Contains(err.Error(), "lian-build sbom scanner") {
		t.Errorf("the error for a missing scanner does not say how to make one: %v", err)
	}
}
