package remote_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/testenv"
)

// On a disk that makes no reflink copies (this machine's ext4), the first
// warm operation puts the warm directory on an XFS image with reflink; a
// later command mounts it again when it is not mounted (after a reboot); a warm
// directory holding state from before the image is left where it is. The
// runner script runs as on a VM, as root, in a mount namespace of the
// test's own (its /run a tmpfs holding runner.env), which takes its mounts
// and their loop devices with it.
func TestWarmStateGoesOnAnXFSImage(t *testing.T) {
	testenv.Require(t)
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Fatal("mkfs.xfs is needed (apt-get install xfsprogs)")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "runner.sh")
	if err := os.WriteFile(script, []byte(remote.RunnerScript()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "old", "ns"), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", `set -e
d=$1 script=$2
mount -t tmpfs tmpfs /run && mkdir -p /run/lian-build
env() { printf 'WARM=%s\nWARM_IMAGE=%s\nSYSTEM_PREP=0\n' "$1" "$2" >/run/lian-build/runner.env; }
env "$d/warm" "$d/warm.xfs"
echo "root $(stat -f -c %T "$d")"
sh "$script" warm-list
echo "first $(stat -f -c %T "$d/warm") $(xfs_info "$d/warm" | grep -o 'reflink=[01]')"
umount "$d/warm"
echo "unmounted $(stat -f -c %T "$d/warm")"
sh "$script" image-boot /nonexistent - unit - >/dev/null # a command of no warm state's own
echo "again $(stat -f -c %T "$d/warm")"
env "$d/old" "$d/old.xfs"
sh "$script" warm-list
echo "old $(stat -f -c %T "$d/old") $(test -e "$d/old.xfs" && echo image || echo no-image)"
`, "sh", dir, script).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "root ext2/ext3\nfirst xfs reflink=1\nunmounted ext2/ext3\nagain xfs\nold ext2/ext3 no-image\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if loops, _ := exec.Command("losetup", "-j", filepath.Join(dir, "warm.xfs")).Output(); strings.TrimSpace(string(loops)) != "" {
		t.Errorf("loop devices left on the image: %s", loops)
	}
}
