package cli

import (
	"reflect"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	fs := newFlagSet("t", nil)
	var tags listFlag
	var push bool
	fs.Var(&tags, "t", "")
	fs.BoolVar(&push, "push", false, "")
	pos, err := parseInterspersed(fs, []string{"-t", "a", "ctx", "--push", "-t", "b"})
	if err != nil || !reflect.DeepEqual(pos, []string{"ctx"}) || !push || !reflect.DeepEqual([]string(tags), []string{"a", "b"}) {
		t.Fatalf("pos %v tags %v push %v err %v", pos, tags, push, err)
	}
}

func TestDefaultWorkspace(t *testing.T) {
	for in, want := range map[string]string{"/src/My App": "my-app", "/src/lian-build": "lian-build", "/": "default"} {
		if got := defaultWorkspace(in); got != want {
			t.Errorf("defaultWorkspace(%q) = %q, want %q", in, got, want)
		}
	}
}
