package testenv

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// SoakConfig is a soak's length and seed: LIAN_SOAK (a duration, default
// def) and LIAN_SOAK_SEED (default: the clock). The caller prints the
// seed: it reproduces the soak's choices.
func SoakConfig(t testing.TB, def time.Duration) (time.Duration, uint64) {
	t.Helper()
	d, seed := def, uint64(time.Now().UnixNano())
	if v := os.Getenv("LIAN_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("LIAN_SOAK=%q: %v", v, err)
		}
	}
	if v := os.Getenv("LIAN_SOAK_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("LIAN_SOAK_SEED=%q: %v", v, err)
		}
	}
	return d, seed
}
