package redact

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://u:PASS@h:1/x":         "http://u:***@h:1/x",
		"nats://TOKEN@h:4222":         "nats://***@h:4222",
		"tcp://u:p%40ss@docker:2376":  "tcp://u:***@docker:2376",
		"https://h/api?token=abc&a=b": "https://h/api?a=b&token=***",
		"http://h:1/x":                "http://h:1/x",
		"unix:///var/run/docker.sock": "unix:///var/run/docker.sock",
		"not a url":                   "not a url",
		"ssh://git@host:22/repo":      "ssh://***@host:22/repo",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(URL(in), "PASS") || strings.Contains(URL(in), "TOKEN") {
			t.Errorf("URL(%q) shows the credential", in)
		}
	}
}

func TestErr(t *testing.T) {
	err := Err(io.ErrUnexpectedEOF, "s3cret", "")
	if err.Error() != io.ErrUnexpectedEOF.Error() || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	err = Err(errors.New("dial tcp://u:s3cret@h and s3cret again"), "s3cret")
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "u:***@h") {
		t.Fatal(err)
	}
	if Err(nil, "x") != nil {
		t.Fatal("nil")
	}
}
