package proxmox

import (
	"errors"
	"testing"

	"github.com/lian-build/action/internal/compute"
)

// An arm64 build (a multi-platform build's arm64 leg) clones the arm64
// template on its node; without one it is refused naming the option.
func TestArmBuildsCloneTheArmTemplate(t *testing.T) {
	opts := map[string]string{OptEndpoint: "https://pve.example:8006/api2/json", OptToken: "u@pve!t=s", OptNode: "pve1", OptTemplate: "9000"}
	p, err := compute.New("proxmox", compute.Config{Options: opts, Arch: "x86"})
	if err != nil || p.(*Provider).s.Template != 9000 || p.(*Provider).s.Node != "pve1" {
		t.Fatalf("x86: %+v %v", p, err)
	}
	var oe *compute.OptionError
	if _, err := compute.New("proxmox", compute.Config{Options: opts, Arch: "arm"}); !errors.As(err, &oe) || oe.Option != OptArmTemplate {
		t.Fatalf("arm without an arm template: %v", err)
	}
	opts[OptArmTemplate], opts[OptArmNode] = "9100", "pve-arm"
	p, err = compute.New("proxmox", compute.Config{Options: opts, Arch: "arm"})
	if err != nil || p.(*Provider).s.Template != 9100 || p.(*Provider).s.Node != "pve-arm" {
		t.Fatalf("arm: %+v %v", p, err)
	}
	opts[OptArmTemplate] = "nine"
	if _, err := compute.New("proxmox", compute.Config{Options: opts, Arch: "arm"}); !errors.As(err, &oe) || oe.Option != OptArmTemplate || oe.Value != "nine" {
		t.Fatalf("a bad arm template: %v", err)
	}
}
