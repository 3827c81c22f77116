package doctest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lian-build/action/internal/testenv"
)

// block is one marked command block of the README.
type block struct {
	line   int // of its marker
	script string
	expect []string
}

var expectRE = regexp.MustCompile(`expect="([^"]*)"`)

// blocks are the README's marked blocks, in order.
func blocks(readme string) ([]block, error) {
	lines := strings.Split(readme, "\n")
	var out []block
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "<!-- doctest") {
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "```sh" {
			return nil, fmt.Errorf("README.md:%d: a doctest marker must stand right before a ```sh block", i+1)
		}
		b := block{line: i + 1}
		for _, m := range expectRE.FindAllStringSubmatch(lines[i], -1) {
			b.expect = append(b.expect, m[1])
		}
		j := i + 2
		for ; j < len(lines) && lines[j] != "```"; j++ {
		}
		b.script = strings.Join(lines[i+2:j], "\n")
		out = append(out, b)
		i = j
	}
	return out, nil
}

const marker = "@@doctest block %d@@"

// The README's first-hour blocks run as written: every command succeeds,
// each block prints what it promises, and nothing is left running,
// mounted or on disk outside the blocks' own directory.
func TestREADMEBlocksRunAsWritten(t *testing.T) {
	testenv.Require(t)
	testenv.RequireTools(t, "docker-registry", "make", "mkfs.btrfs")
	root := testenv.RepoRoot()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := blocks(string(readme))
	if err != nil || len(bs) < 5 {
		t.Fatalf("%d marked blocks: %v", len(bs), err)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range bs {
		fmt.Fprintf(&script, "echo '"+marker+"'\n%s\n", i, b.script)
	}
	tmp := t.TempDir()
	out := run(t, root, script.String(), tmp)
	parts := strings.Split(out, "@@doctest block ")
	for i, b := range bs {
		var got string
		for _, p := range parts {
			if strings.HasPrefix(p, fmt.Sprintf("%d@@", i)) {
				got = p
			}
		}
		for _, e := range b.expect {
			if !strings.Contains(got, e) {
				t.Errorf("README.md:%d: the block's output lacks %q:\n%s", b.line, e, got)
			}
		}
	}
	testenv.AssertNoRunners(t, filepath.Join(tmp, "runners"))
	testenv.AssertNothingMountedUnder(t, tmp)
}

// run runs the script in its own process group at root, with T and a free
// registry port, and kills the group whatever happens.
func run(t *testing.T, root, script, tmp string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "T="+tmp, fmt.Sprintf("REGISTRY_PORT=%d", port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("the README's blocks failed: %v\n%s", err, buf.String())
	}
	return buf.String()
}
