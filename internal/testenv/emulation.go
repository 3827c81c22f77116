package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/platforms"
	"github.com/lian-build/action/internal/sbom"
)

// binfmtConf is Debian's registration of qemu-user-static for arm64
// binaries (flag F: the interpreter is opened at registration, so it runs
// in every mount and network namespace, as on a real arm64 machine's
// stand-in).
const binfmtConf = "/usr/lib/binfmt.d/qemu-aarch64.conf"

const binfmtDir = "/proc/sys/fs/binfmt_misc"

// Emulation makes this machine run arm64 binaries through QEMU user mode:
// binfmt_misc mounted and Debian's qemu-aarch64 entry registered (a
// machine-wide setting, kept). The fake Hetzner API's cax servers are
// runner hosts on this x86 machine: their RUN steps need it.
func Emulation(t testing.TB) {
	t.Helper()
	Require(t)
	conf, err := os.ReadFile(binfmtConf)
	if err != nil {
		missingPrereq(t, "qemu-user-static (apt-get install qemu-user-static): "+err.Error())
		return
	}
	if _, err := os.Stat(filepath.Join(binfmtDir, "register")); err != nil {
		if err := syscall.Mount("binfmt_misc", binfmtDir, "binfmt_misc", 0, ""); err != nil {
			t.Fatalf("mounting binfmt_misc: %v", err)
		}
	}
	entry := filepath.Join(binfmtDir, "qemu-aarch64")
	if b, err := os.ReadFile(entry); err == nil && bytes.HasPrefix(b, []byte("enabled")) {
		return
	}
	if err := os.WriteFile(filepath.Join(binfmtDir, "register"), bytes.TrimSpace(conf), 0); err != nil && !os.IsExist(err) {
		t.Fatalf("registering %s: %v", binfmtConf, err)
	}
}

// BusyboxArm64 is the arm64 busybox `make tools` fetched (Debian's
// busybox-static:arm64).
func BusyboxArm64(t testing.TB) string {
	t.Helper()
	return madeTool(t, "busybox-arm64")
}

// madeTool is a program `make tools` puts in bin/.
func madeTool(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(), "bin", name)
	if !fileExists(p) {
		missingPrereq(t, "bin/"+name+" (make tools)")
	}
	return p
}

var (
	multiOnce sync.Once
	multiDir  string
	multiErr  error
)

// MultiArchBase is an OCI layout of a busybox image for linux/amd64 and
// linux/arm64 (one index), as `FROM base` with
// --build-context base=oci-layout://DIR resolves on either platform.
func MultiArchBase(t testing.TB) string {
	t.Helper()
	Emulation(t)
	amd := Rootfs(t)
	bb := BusyboxArm64(t)
	multiOnce.Do(func() { multiDir, multiErr = makeMultiArchBase(t, amd, bb) })
	if multiErr != nil {
		t.Fatal(multiErr)
	}
	return multiDir
}

func makeMultiArchBase(t testing.TB, amdRootfs, armBusybox string) (string, error) {
	dir := filepath.Join(filepath.Dir(amdRootfs), "base-multi-"+filepath.Base(amdRootfs))
	if fileExists(filepath.Join(dir, "index.json")) {
		return dir, nil
	}
	arm, err := os.MkdirTemp("", "lian-rootfs-arm64-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(arm)
	if err := MakeBusyboxRootfs(armBusybox, arm); err != nil {
		return "", fmt.Errorf("arm64 rootfs (is QEMU registered?): %w", err)
	}
	df := "FROM scratch AS base-amd64\nCOPY --from=rootfs-amd64 / /\nFROM scratch AS base-arm64\nCOPY --from=rootfs-arm64 / /\nFROM base-${TARGETARCH}\nENV PATH=/bin\nCMD [\"sh\"]\n"
	return buildLayout(t, dir, df, []string{"linux/amd64", "linux/arm64"},
		[]buildkit.NamedContext{{Name: "rootfs-amd64", Dir: amdRootfs}, {Name: "rootfs-arm64", Dir: arm}})
}

// Cosign is the real cosign `make tools` built (tools/cosign).
func Cosign(t testing.TB) string {
	t.Helper()
	return madeTool(t, "cosign")
}

// SBOMScanner pushes lian-build's SBOM scanner image (bin/lian-sbom-scanner
// from make tools) to reg and returns its REPOSITORY@DIGEST.
func SBOMScanner(t testing.TB, reg *Registry) string {
	t.Helper()
	bin := madeTool(t, "lian-sbom-scanner")
	ref, err := sbom.Registry{Registry: platforms.Registry{Insecure: []string{reg.Host}}}.PushScanner(context.Background(), reg.Host+"/tools/lian-sbom-scanner", map[string]string{runtime.GOARCH: bin})
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
