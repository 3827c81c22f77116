package vmhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Suite and Mirror are the Debian release the guests run and where
// debootstrap fetches it (Hetzner's debian-12 image is bookworm).
const (
	Suite  = "bookworm"
	Mirror = "http://deb.debian.org/debian"
)

// Packages are what the guest image holds besides Debian's minimal base: a
// Hetzner server's stock image, plus the tools a runner needs.
var Packages = []string{
	"systemd", "systemd-sysv", "udev", "kmod", "openssh-server", "cloud-init", "runc", "ca-certificates",
	"btrfs-progs", "xfsprogs", "qemu-guest-agent", "linux-image-cloud-amd64", "initramfs-tools",
	"ifupdown", "isc-dhcp-client", "curl", "iproute2", "procps",
}

// inChroot runs $2 in the root $1 with /proc, /sys and /dev mounted.
const inChroot = `set -e; r=$1; mount -t proc proc $r/proc; mount -t sysfs sys $r/sys; mount --rbind /dev $r/dev; chroot $r sh -c "$2"`

// install installs Packages with apt, starting no service in the chroot.
var install = "set -e\nprintf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d\n" +
	"apt-get update -qq\nDEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends " + strings.Join(Packages, " ") + "\n" +
	"rm -f /usr/sbin/policy-rc.d\n"

// customize runs in the image's root after debootstrap: what makes a
// fresh server of it (no host keys, no machine id: cloud-init and systemd
// make them at first boot), cloud-init told to look for Hetzner's
// datasource (or a NoCloud seed, as Proxmox gives) and, as Hetzner's
// images do, to put the server's keys on root; and, for emulated cores,
// one host key type (each RSA key costs seconds under emulation), no
// gettys on virtual terminals nobody sees, no timers that would compete
// with a build.
const customize = `set -e
echo 'LABEL=root / ext4 defaults,discard 0 1' > /etc/fstab
mkdir -p /etc/cloud/cloud.cfg.d
printf 'datasource_list: [Hetzner, NoCloud, None]\n' > /etc/cloud/cloud.cfg.d/90-lian-datasources.cfg
printf 'disable_root: false\nlocale: C.UTF-8\nssh_genkeytypes: [ed25519]\n' > /etc/cloud/cloud.cfg.d/90-lian-hetzner.cfg
for t in 1 2 3 4 5 6; do systemctl mask getty@tty$t.service >/dev/null 2>&1; done
systemctl mask e2scrub_reap.service >/dev/null 2>&1 || true
rm -f /etc/ssh/ssh_host_* /etc/hostname /var/lib/dbus/machine-id
: > /etc/machine-id
for t in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer dpkg-db-backup.timer; do
  systemctl disable $t >/dev/null 2>&1 || true
done
grep -q 'interfaces.d' /etc/network/interfaces 2>/dev/null || printf 'source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n' > /etc/network/interfaces
passwd -l root >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /var/log/*.log
`

// Image is a guest image: its kernel and initrd (booted directly) and its
// root disk (raw ext4, labelled root), read-only: each VM boots a
// copy-on-write overlay of it.
type Image struct {
	Kernel, Initrd, Disk string
}

// CacheDir is where images are kept: $LIAN_VM_CACHE or
// /var/cache/lian-build/vm (outside the repository, like the lamina
// example's rootfs, and kept between runs).
func CacheDir() string {
	if d := os.Getenv("LIAN_VM_CACHE"); d != "" {
		return d
	}
	return "/var/cache/lian-build/vm"
}

// recipeKey names an image by everything that goes into it.
func recipeKey() string {
	h := sha256.Sum256([]byte(Suite + "\n" + Mirror + "\n" + install + customize))
	return hex.EncodeToString(h[:8])
}

// BuildImage returns the cached image, building it first when there is
// none (debootstrap from Debian's mirror: ~5 minutes). Concurrent callers,
// in this process or another, wait for one build.
func BuildImage(ctx context.Context, log io.Writer) (Image, error) {
	dir := filepath.Join(CacheDir(), Suite+"-"+recipeKey())
	img := Image{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img"), Disk: filepath.Join(dir, "root.raw")}
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return img, err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return img, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return img, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		return img, nil
	}
	if err := build(ctx, dir, img, log); err != nil {
		return img, fmt.Errorf("vm image %s: %w", dir, err)
	}
	return img, os.WriteFile(filepath.Join(dir, ".done"), nil, 0o644)
}

func build(ctx context.Context, dir string, img Image, log io.Writer) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, log), io.MultiWriter(&out, log)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, tail(out.String(), 2000))
		}
		return nil
	}
	fmt.Fprintf(log, "vm image: debootstrap %s, then apt-get install %s\n", Suite, strings.Join(Packages, " "))
	if err := run("debootstrap", "--variant=minbase", Suite, root, Mirror); err != nil {
		return err
	}
	// apt, not debootstrap, resolves the packages (debootstrap does not
	// follow virtual packages); in a mount namespace of its own, so that
	// the chroot's /proc, /sys and /dev go away with it whatever happens.
	if err := run("unshare", "--mount", "--propagation", "private", "sh", "-c", inChroot, "sh", root, install+customize); err != nil {
		return err
	}
	for src, dst := range map[string]string{"vmlinuz": img.Kernel, "initrd.img": img.Initrd} {
		if err := copyFile(filepath.Join(root, src), dst); err != nil {
			return err
		}
	}
	if err := run("mkfs.ext4", "-q", "-L", "root", "-d", root, img.Disk, "4G"); err != nil {
		return err
	}
	return os.RemoveAll(root)
}

// copyFile copies a file, following symbolic links inside the image's root
// (/vmlinuz is a relative link into /boot).
func copyFile(src, dst string) error {
	target, err := os.Readlink(src)
	if err == nil {
		if filepath.IsAbs(target) {
			return errors.New(src + ": an absolute link")
		}
		src = filepath.Join(filepath.Dir(src), target)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
