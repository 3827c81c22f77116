package poolapi

import (
	"strings"
	"testing"
)

// A pool's URL: http(s) with a host and no credentials; plain http to
// another machine is said to send grants (private keys) in clear.
func TestCheckURL(t *testing.T) {
	for in, want := range map[string]bool{"http://127.0.0.1:8090": false, "http://localhost:8090": false, "https://pool.example": false,
		"http://pool.example:8090": true, "http://10.0.0.5:8090": true} {
		if clear, err := CheckURL(in); err != nil || clear != want {
			t.Errorf("CheckURL(%q) = %v, %v; want %v", in, clear, err, want)
		}
	}
	for _, bad := range []string{"ftp://x", "pool:8090", "http://", "http://u:SECRETPW@pool:1"} {
		_, err := CheckURL(bad)
		if err == nil || strings.Contains(err.Error(), "SECRETPW") {
			t.Errorf("CheckURL(%q) = %v", bad, err)
		}
	}
	for _, bad := range []string{"", "tok ", " tok", "t\nok", "t\x00k"} {
		if CheckToken(bad) == nil {
			t.Errorf("CheckToken(%q) accepted", bad)
		}
	}
}
