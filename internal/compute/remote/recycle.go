package remote

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute/sshx"
)

//go:embed runner.sh
var runnerScript string

// RunnerScript is the runner machine's own commands (run as root over
// SSH): a pool's recycle and grant between leases, and a lease's state
// volume; its usage is at its top.
func RunnerScript() string { return renderedRunnerScript() }

var renderedRunnerScript = sync.OnceValue(func() string {
	return strings.NewReplacer("@STATS@", StatsCommand, "@NOSYNC@", strings.TrimSuffix(NoSyncProgram(), "\n")).Replace(runnerScript)
})

// AuthorizedKey is a public key as one authorized_keys line, without comment.
func AuthorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// RecycleOptions say what a recycled machine is made ready for.
type RecycleOptions struct {
	// Cold starts no buildkitd: the grant starts it.
	Cold bool
	// Tree, when set, starts buildkitd on the work tree of that name: a copy
	// of Open's committed generation ("": an empty tree a commit can keep).
	Open, Tree string
	// Next is let in like a grant's key: the next lease's, whose private
	// half the pool keeps until it hands it out.
	Next ssh.PublicKey
}

// Recycle ends whatever the last lease left on the machine and starts a
// new buildkitd as o says; afterwards only admin's key gets in, and o.Next.
// With a tree it returns the generation it opened.
func Recycle(ctx context.Context, c *sshx.Conn, admin ssh.PublicKey, o RecycleOptions) (Generation, error) {
	args := []string{"recycle", AuthorizedKey(admin)}
	switch {
	case o.Tree != "":
		args = append(args, "open", cmp.Or(o.Open, "-"), o.Tree)
	case o.Cold:
		args = append(args, "cold")
	}
	if o.Next != nil {
		args = append(args, "key", AuthorizedKey(o.Next))
	}
	out, err := RunScript(ctx, c, args...)
	if err != nil || o.Tree == "" {
		return Generation{}, err
	}
	return ParseGeneration("recycle", out)
}

// Grant lets lease's key in, restricted to the counters and buildkitd's
// socket; given a tree, the buildkitd a recycle started on it is the
// lease's (else one on a work tree is restarted on an empty root).
func Grant(ctx context.Context, c *sshx.Conn, admin, lease ssh.PublicKey, tree string) error {
	args := []string{"grant", AuthorizedKey(admin), AuthorizedKey(lease)}
	if tree != "" {
		args = append(args, "adopt", tree)
	}
	return runScript(ctx, c, args...)
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
	out, err := c.RunInput(ctx, "sh -s --"+quoted(args), []byte(RunnerScript()))
	if err != nil {
		return "", fmt.Errorf("%s on %s: %w", args[0], c.Addr(), err)
	}
	return string(out), nil
}

// ScriptCommand is one of the runner script's commands as a command line
// (sh -c): its standard input and output are the command's own, for the
// commands that stream (warm-export, warm-import).
func ScriptCommand(args ...string) string {
	return "sh -c '" + strings.ReplaceAll(RunnerScript(), "'", `'\''`) + "' runner" + quoted(args)
}

// quoted is the script's arguments on a command line: keys, paths, lease
// ids, namespaces and numbers, none with a quote in it.
func quoted(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(" '" + a + "'")
	}
	return b.String()
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
