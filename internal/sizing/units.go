package sizing

import (
	"fmt"
	"strings"
)

// ParseTierMemory reads "cax11=256MiB,cax21=512MiB" into bytes per tier, checking
// the names against the table.
func ParseTierMemory(s string, table Table) (map[string]int64, error) {
	out := map[string]int64{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		name, size, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not TIER=SIZE", kv)
		}
		t, err := table.Lookup(name)
		if err != nil {
			return nil, err
		}
		n, err := ParseSize(size)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[t.Name] = n
	}
	return out, nil
}

// ParseSize reads sizes like 512MiB, 1GiB, 300M, 4096 (bytes).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != s {
		return 0, fmt.Errorf("invalid size %q (want e.g. 256MiB, 2GiB)", s)
	}
	return n * mult, nil
}
