package runnerhost

import (
	"bytes"
	"strings"
	"testing"
)

// An unknown kind of runner host is a usage error naming the flag.
func TestMainRefusesAnUnknownRunnerHostKind(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"--runner-hosts", "kvm", "--listen", "127.0.0.1:0"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `--runner-hosts "kvm": want netns or vm`) {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
