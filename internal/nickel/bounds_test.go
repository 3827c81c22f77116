package nickel

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// bomb is the 1.7 KB exponential-string file: each line doubles the string.
func bomb(lines int) string {
	var b strings.Builder
	b.WriteString("let a0 = \"xxxxxxxxxxxxxxxx\" in\n")
	for i := 1; i < lines; i++ {
		fmt.Fprintf(&b, "let a%d = \"%%{a%d}%%{a%d}\" in\n", i, i-1, i-1)
	}
	fmt.Fprintf(&b, "{ v = a%d }\n", lines-1)
	return b.String()
}

// The exponential-string file is refused in under 1 s with under 64 MB
// allocated, measured as the growth of runtime.MemStats.TotalAlloc (every
// byte the evaluation allocated, freed or not) across the call.
func TestEvalBoundsExponentialString(t *testing.T) {
	src := bomb(59)
	if len(src) > 2500 {
		t.Fatalf("bomb is %d bytes", len(src))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := Eval(context.Background(), "bomb.ncl", []byte(src), Options{})
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("refused in %v, %.1f MB allocated: %v", took, float64(allocated)/(1<<20), err)
	if err == nil || !strings.Contains(err.Error(), "allocates more than") || !strings.Contains(err.Error(), "bomb.ncl:") {
		t.Fatalf("err = %v, want the allocation bound with file:line", err)
	}
	if took > time.Second {
		t.Errorf("refusal took %v, want < 1s", took)
	}
	if allocated > 64<<20 {
		t.Errorf("allocated %d bytes, want < 64 MB", allocated)
	}
}

func TestEvalBoundsArraysAndRecords(t *testing.T) {
	// An array of arrays built by a doubling function: bounded by bytes.
	src := "let d = fun x => [x, x, x, x, x, x, x, x] in " + strings.Repeat("d (", 12) + "1" + strings.Repeat(")", 12)
	_, err := Eval(context.Background(), "arr.ncl", []byte(src), Options{Limits: Limits{MaxBytes: 1 << 16}})
	// Arrays are lazy: the bound must hit while exporting them.
	if err == nil || !(strings.Contains(err.Error(), "allocates more than") || strings.Contains(err.Error(), "exceeds")) {
		t.Fatalf("err = %v, want a bound", err)
	}
}

func TestEvalHonoursContext(t *testing.T) {
	// A long but finite evaluation: many fields, each a function application.
	var b strings.Builder
	b.WriteString("let id = fun x => x in {")
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&b, " f%d = id %d,", i, i)
	}
	b.WriteString(" }")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Eval(ctx, "slow.ncl", []byte(b.String()), Options{})
	if err == nil || !strings.Contains(err.Error(), "evaluation stopped: context canceled") || !strings.Contains(err.Error(), "slow.ncl:1:") {
		t.Fatalf("err = %v, want the context's error with a position", err)
	}
	if _, err := Eval(context.Background(), "slow.ncl", []byte(b.String()), Options{}); err != nil {
		t.Fatalf("without a deadline: %v", err)
	}
}
