package sizing

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := map[string]int64{"256MiB": 256 << 20, "1GiB": 1 << 30, "300M": 300 << 20, "4096": 4096, "2GB": 2e9, "10KiB": 10 << 10}
	for in, want := range tests {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-5MiB", "1.5GiB", "MiB", "0"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestParseTierMemory(t *testing.T) {
	m, err := ParseTierMemory("cax11=256MiB, CAX21=512MiB", HCloud)
	if err != nil || m["cax11"] != 256<<20 || m["cax21"] != 512<<20 || len(m) != 2 {
		t.Fatalf("%v %v", m, err)
	}
	for in, want := range map[string]string{
		"cax99=1GiB": "unknown runner tier",
		"cax11":      "not TIER=SIZE",
		"cax11=big":  "invalid size",
	} {
		if _, err := ParseTierMemory(in, HCloud); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}
