package vmhost

import (
	"testing"
	"time"
)

func TestBootDone(t *testing.T) {
	for _, tc := range []struct {
		console string
		want    bool
	}{
		{"", false},
		{"[   30.4] cloud-init[332]: Cloud-init v. 22.4.2 running 'init-local' at Mon, 07 Dec 2026", false},
		{"[   66.7] cloud-init[465]: Cloud-init v. 22.4.2 running 'modules:final' at Mon\n[   86.6] cloud-init[465]: Cloud-init v. 22.4.2 finished at Mon, 07 Dec 2026 04:43:40 +0000. Datasource DataSourceHetzner.  Up 86.55 seconds\n", true},
		{"login: something finished at noon\n", false},
	} {
		if got := bootDone(tc.console); got != tc.want {
			t.Errorf("bootDone(%q) = %v, want %v", tc.console, got, tc.want)
		}
	}
}

// With every slot taken, a VM waits until one is released, or until it is
// stopped.
func TestBootSlotsAreShared(t *testing.T) {
	machine := bootSlotDir
	bootSlotDir = t.TempDir() // not the machine's: VMs of other tests may boot
	t.Cleanup(func() { bootSlotDir = machine })
	var held []interface{ Close() error }
	for range bootSlots() {
		f, err := acquireBootSlot(nil)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
	}
	quit := make(chan struct{})
	got := make(chan error, 1)
	again := make(chan interface{ Close() error }, 1)
	go func() {
		f, err := acquireBootSlot(quit)
		if err == nil {
			again <- f
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a slot was acquired while all %d were held (%v)", len(held), err)
	case <-time.After(time.Second):
	}
	held[0].Close()
	if err := <-got; err != nil {
		t.Fatalf("after a release: %v", err)
	}
	held[0] = <-again
	go func() {
		_, err := acquireBootSlot(quit)
		got <- err
	}()
	close(quit)
	if err := <-got; err == nil {
		t.Fatal("a stopped VM acquired a slot while all were held")
	}
	for _, f := range held {
		f.Close()
	}
}
