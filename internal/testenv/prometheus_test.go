package testenv

import "testing"

// A counter's total counts its first sample from zero and each reset (a
// restart) from zero again.
func TestCounterTotal(t *testing.T) {
	for _, c := range []struct {
		values []float64
		want   float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{0, 2, 5}, 5}, {[]float64{2, 5, 1, 3}, 8}, {[]float64{4, 4, 0, 0, 1}, 5}} {
		if got := (Series{Values: c.values}).CounterTotal(); got != c.want {
			t.Errorf("%v: %v, want %v", c.values, got, c.want)
		}
	}
}
