package suggest

import "testing"

func TestNearest(t *testing.T) {
	known := []string{"runner_type", "cpu", "memory_gb", "time_budget_min"}
	for name, want := range map[string]string{"runer_type": "runner_type", "cpus": "cpu", "memory": "", "budget": "", "timebudget_min": "time_budget_min"} {
		got, ok := Nearest(name, known)
		if ok != (want != "") || (ok && got != want) {
			t.Errorf("Nearest(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if Distance("kitten", "sitting") != 3 || Distance("", "abc") != 3 || Distance("same", "same") != 0 {
		t.Error("Distance")
	}
}
