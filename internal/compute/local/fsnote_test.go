package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFilesystemNote(t *testing.T) {
	sys := t.TempDir()
	for dev, task := range map[string]string{"vda": "<none>\n", "vdb": "jbd2/vdb-8\n"} {
		if err := os.MkdirAll(filepath.Join(sys, dev), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, dev, "journal_task"), []byte(task), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mountinfo := strings.Join([]string{
		"22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard",
		"30 22 254:16 / /srv/journaled rw,relatime shared:2 - ext4 /dev/vdb rw",
		"31 22 0:40 / /srv/journaled/tmp rw shared:3 - tmpfs tmpfs rw",
		`32 22 254:16 / /srv/with\040space rw shared:4 - ext4 /dev/vda rw`,
		"garbage line",
	}, "\n")
	mounts, err := parseMountinfo(strings.NewReader(mountinfo))
	if err != nil || len(mounts) != 4 {
		t.Fatalf("parsed %d mounts (%v), want 4 (the garbage line skipped)", len(mounts), err)
	}
	for _, c := range []struct {
		dir, want string
	}{
		{"/var/lib/lian-build/runners", "/dev/vda at /"},           // root: ext4, no journal
		{"/srv/journaled/runners", ""},                             // journaled ext4
		{"/srv/journaled/tmp/runners", ""},                         // tmpfs inside it: the longest mount point wins
		{"/srv/journaledX/runners", "/dev/vda at /"},               // a prefix of a name is not a parent
		{"/srv/with space/runners", "/dev/vda at /srv/with space"}, // escaped mount point
	} {
		got := filesystemNote(mounts, sys, c.dir)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: note %q, want one naming %q", c.dir, got, c.want)
		}
		if got != "" && !strings.Contains(got, "--state-dir") {
			t.Errorf("%s: the note does not say what to do: %q", c.dir, got)
		}
	}
	if got := filesystemNote(mounts, filepath.Join(sys, "absent"), "/x"); got != "" {
		t.Errorf("no sysfs entry must give no note, got %q", got)
	}
}
