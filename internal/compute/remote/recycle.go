package remote

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute/sshx"
)

//go:embed runner.sh
var runnerScript string

// RunnerScript is the runner machine's own commands (run as root over
// SSH): a pool's recycle and grant between leases, and a lease's state
// volume; its usage is at its top.
func RunnerScript() string { return strings.Replace(runnerScript, "@STATS@", StatsCommand, 1) }

// AuthorizedKey is a public key as one authorized_keys line, without comment.
func AuthorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// Recycle ends whatever the last lease left on the machine and starts a new
// buildkitd on an empty root (cold: none, the grant starts it); afterwards
// only admin's key gets in.
func Recycle(ctx context.Context, c *sshx.Conn, admin ssh.PublicKey, cold bool) error {
	args := []string{"recycle", AuthorizedKey(admin)}
	if cold {
		args = append(args, "cold")
	}
	return runScript(ctx, c, args...)
}

// Grant lets lease's key in, restricted to the counters and buildkitd's socket.
func Grant(ctx context.Context, c *sshx.Conn, admin, lease ssh.PublicKey) error {
	return runScript(ctx, c, "grant", AuthorizedKey(admin), AuthorizedKey(lease))
}

// GrantWarm is Grant on a pool VM's warm state: buildkitd restarted on a
// copy of the namespace's committed generation on the VM ("": an empty
// tree a commit can keep), in one session.
func GrantWarm(ctx context.Context, c *sshx.Conn, admin, lease ssh.PublicKey, namespace, leaseID string) (Generation, error) {
	if namespace == "" {
		namespace = "-"
	}
	out, err := RunScript(ctx, c, "grant", AuthorizedKey(admin), AuthorizedKey(lease), namespace, leaseID)
	if err != nil {
		return Generation{}, err
	}
	return ParseGeneration("grant", out)
}

func runScript(ctx context.Context, c *sshx.Conn, args ...string) error {
	_, err := RunScript(ctx, c, args...)
	return err
}

// RunScript runs one of the runner script's commands and returns its output.
func RunScript(ctx context.Context, c *sshx.Conn, args ...string) (string, error) {
	cmd := "sh -s --"
	for _, a := range args {
		cmd += " '" + a + "'" // keys, paths and lease ids: no quote in them
	}
	out, err := c.RunInput(ctx, cmd, []byte(RunnerScript()))
	if err != nil {
		return "", fmt.Errorf("%s on %s: %w", args[0], c.Addr(), err)
	}
	return string(out), nil
}

// Generation is what the runner script's state commands print:
// "generation N bytes B".
type Generation struct {
	N     int
	Bytes int64
}

// ParseGeneration reads a state command's answer.
func ParseGeneration(cmd, out string) (Generation, error) {
	f := strings.Fields(out)
	if len(f) < 4 || f[0] != "generation" || f[2] != "bytes" {
		return Generation{}, fmt.Errorf("%s said %q", cmd, strings.TrimSpace(out))
	}
	n, err1 := strconv.Atoi(f[1])
	b, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil {
		return Generation{}, fmt.Errorf("%s said %q", cmd, strings.TrimSpace(out))
	}
	return Generation{N: n, Bytes: b}, nil
}
