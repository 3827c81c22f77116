package remote

import (
	"context"
	_ "embed"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute/sshx"
)

//go:embed recycle.sh
var recycleScript string

// RecycleScript is the script a pool runs on a machine (as root, over its
// own key) between leases; its usage is at its top.
func RecycleScript() string { return strings.Replace(recycleScript, "@STATS@", StatsCommand, 1) }

// AuthorizedKey is a public key as one authorized_keys line, without comment.
func AuthorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// Recycle ends whatever the last lease left on the machine and starts a new
// buildkitd on an empty root; afterwards only admin's key gets in.
func Recycle(ctx context.Context, c *sshx.Conn, admin ssh.PublicKey) error {
	return runScript(ctx, c, "recycle", AuthorizedKey(admin))
}

// Grant lets lease's key in, restricted to the counters and buildkitd's socket.
func Grant(ctx context.Context, c *sshx.Conn, admin, lease ssh.PublicKey) error {
	return runScript(ctx, c, "grant", AuthorizedKey(admin), AuthorizedKey(lease))
}

func runScript(ctx context.Context, c *sshx.Conn, args ...string) error {
	cmd := "sh -s --"
	for _, a := range args {
		cmd += " '" + a + "'" // keys are base64 and a type name: no quote in them
	}
	if _, err := c.RunInput(ctx, cmd, []byte(RecycleScript())); err != nil {
		return fmt.Errorf("%s on %s: %w", args[0], c.Addr(), err)
	}
	return nil
}
