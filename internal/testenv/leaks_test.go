package testenv

import (
	"os"
	"strings"
	"testing"
)

// UsageOf sees files this process opens, and Grown names what grew past
// its bound.
func TestUsage(t *testing.T) {
	before, err := UsageOf(0)
	if err != nil || before.Goroutines == 0 || before.Files == 0 || before.RSS == 0 {
		t.Fatalf("usage %+v, %v", before, err)
	}
	for range 30 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	after, err := UsageOf(0)
	if err != nil || after.Files < before.Files+30 {
		t.Fatalf("after opening 30 files: %+v, %v (before %+v)", after, err, before)
	}
	if g := after.Grown(before); !strings.Contains(g, "open files") || strings.Contains(g, "goroutines") {
		t.Errorf("Grown = %q", g)
	}
	if g := before.Grown(before); g != "" {
		t.Errorf("no growth: Grown = %q", g)
	}
	if g := (Usage{RSS: 300 << 20}).Grown(Usage{RSS: 100 << 20}); !strings.Contains(g, "RSS 100 MiB → 300 MiB") {
		t.Errorf("Grown = %q", g)
	}
	if _, err := UsageOf(os.Getpid()); err != nil {
		t.Errorf("by pid: %v", err)
	}
}
