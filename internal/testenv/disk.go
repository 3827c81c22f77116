package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Disk is a directory on a filesystem of its own, as a runner's disk is: a
// sparse loop image of size bytes formatted fs ("ext4": journaled, or
// "xfs"), mounted for the test and gone after it. This machine's root is
// ext4 without a journal, where creating files right after many were
// deleted costs seconds of kernel time (bench/README, "Why the state lives
// on a journaled filesystem"): a benchmark that writes and deletes hundreds
// of MB per round measures that there, not what it is about.
func Disk(tb testing.TB, fs string, size int64) string {
	tb.Helper()
	mkfs := map[string][]string{"ext4": {"mkfs.ext4", "-q", "-F"}, "xfs": {"mkfs.xfs", "-q", "-f", "-m", "reflink=1"}}[fs]
	if mkfs == nil {
		tb.Fatalf("testenv.Disk: no filesystem %q", fs)
	}
	if _, err := exec.LookPath(mkfs[0]); err != nil || os.Geteuid() != 0 {
		missingPrereq(tb, "root and "+mkfs[0]+" (apt install e2fsprogs xfsprogs)")
	}
	dir := tb.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(size)
		f.Close()
	}
	if err != nil {
		tb.Fatal(err)
	}
	for _, args := range [][]string{append(mkfs, img), {"mount", "-o", "loop,noatime", img, mnt}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			tb.Fatalf("testenv.Disk: %v: %v: %s", args, err, out)
		}
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			tb.Errorf("testenv.Disk: umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}
