package proc

import (
	"os"
	"testing"
)

func TestAliveGuardsPidReuse(t *testing.T) {
	start, err := Start(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(os.Getpid(), start) {
		t.Error("this process is not alive")
	}
	if Alive(os.Getpid(), start+1) {
		t.Error("a different start time must mean a different process")
	}
	if Alive(0, 0) || Alive(1<<22+7, 0) {
		t.Error("nonexistent pids are alive")
	}
}
