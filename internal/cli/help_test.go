package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/testenv"
	"github.com/spf13/cobra"
)

// Every command and subcommand answers -h and --help with its usage on
// stdout and exit 0.
func TestHelpOnEveryCommand(t *testing.T) {
	var walk func(c *cobra.Command, path []string)
	n := 0
	walk = func(c *cobra.Command, path []string) {
		for _, h := range []string{"-h", "--help"} {
			var out, errb bytes.Buffer
			code := Main(context.Background(), append(append([]string{}, path...), h), &out, &errb)
			if code != ExitOK || !strings.Contains(out.String(), "Usage:") || errb.Len() > 0 {
				t.Errorf("lian-build %s %s: exit %d, stdout %.80q, stderr %q", strings.Join(path, " "), h, code, out.String(), errb.String())
			}
			n++
		}
		for _, s := range c.Commands() {
			walk(s, append(append([]string{}, path...), s.Name()))
		}
	}
	walk(NewCommand(nil), nil)
	t.Logf("%d help invocations", n)
	if n < 40 {
		t.Fatalf("only %d help invocations: the command tree is smaller than it should be", n)
	}
}

// Build's help lists the settings under their topics, each provider's
// flags under its name, a shorthand with its long name on one line.
func TestBuildHelpIsGrouped(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"build", "--help"}, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	help := out.String()
	last := -1
	for _, section := range []string{"\nFlags:\n", "\nBuild flags:\n", "\nRunner flags:\n", "\nCache and state flags:\n", "\nRegistry flags:\n",
		"\nEvents and history flags:\n", "\nProvider docker flags:\n", "\nProvider hcloud flags:\n", "\nProvider local flags:\n", "\nProvider proxmox flags:\n", "\nProvider vm-pool flags:\n"} {
		i := strings.Index(help, section)
		if i < 0 || i < last {
			t.Errorf("section %q missing or out of order", strings.TrimSpace(section))
		}
		last = i
	}
	hcloud := help[strings.Index(help, "\nProvider hcloud flags:\n"):strings.Index(help, "\nProvider local flags:\n")]
	for _, want := range []string{"--hcloud-token-file", "--hcloud-location", "--hcloud-buildkit-sha256"} {
		if !strings.Contains(hcloud, want) {
			t.Errorf("hcloud's section lacks %s", want)
		}
	}
	for _, want := range []string{"  -t, --tag strings", "  -f, --file string", "  -o, --output stringArray", "  -q, --quiet"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// `lian-build completion bash|zsh|fish` writes a script; flag values with
// fixed choices complete from the settings table.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), []string{"completion", shell}, &out, &errb); code != ExitOK || !strings.Contains(out.String(), "lian-build") {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, code, out.Len(), errb.String())
		}
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"build", "--provider", ""}, []string{"docker", "hcloud", "local", "proxmox", "vm-pool"}},
		{[]string{"build", "--progress", "p"}, []string{"plain"}},
		{[]string{"build", "--runner-type", "cax"}, []string{"cax11", "cax21", "cax31", "cax41"}},
		{[]string{"state", "ls", "--cache-disposition", ""}, nil},
		{[]string{"sta"}, []string{"state"}},
	} {
		var out, errb bytes.Buffer
		Main(context.Background(), append([]string{cobra.ShellCompRequestCmd}, c.args...), &out, &errb)
		var got []string
		for _, line := range strings.Split(out.String(), "\n") {
			if line != "" && !strings.HasPrefix(line, ":") && !strings.HasPrefix(line, "Completion ended") {
				got = append(got, strings.SplitN(line, "\t", 2)[0])
			}
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("complete %v = %v, want %v", c.args, got, c.want)
		}
	}
}

// A bad command line exits 2 and names what is wrong; an unknown command
// gets the nearest one.
func TestBadCommandLines(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "a command is needed"},
		{[]string{"biuld"}, `unknown command "biuld"`},
		{[]string{"biuld"}, "did you mean build?"},
		{[]string{"build", "--frobnicate", "."}, "unknown flag: --frobnicate (lian-build build --help)"},
		{[]string{"build", "--push=maybe", "."}, `invalid argument "maybe" for "--push"`},
		{[]string{"build", "a", "b"}, "takes one CONTEXT directory, got 2"},
		{[]string{"state", "rm"}, "one or more NAMESPACEs"},
		{[]string{"sizing", "explain"}, "one CONTEXT directory"},
		{[]string{"version", "extra"}, "lian-build version takes no arguments, got 1"},
	} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), c.args, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

// The README shows `lian-build --help` as it is (LIAN_UPDATE_README=1
// rewrites it).
func TestREADMEShowsTheHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"--help"}, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	testenv.CheckREADMEBlock(t, "<!-- cli-help:begin -->\n", "<!-- cli-help:end -->", "```text\n$ lian-build --help\n"+out.String()+"```\n")
}
