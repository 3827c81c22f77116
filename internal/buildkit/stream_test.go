package buildkit

import (
	"bytes"
	"crypto/rand"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// A stream goes zstd when its first bytes shrink and plain when they do
// not, whether it is shorter than the sample or longer; either way the
// bytes are the stream's.
func TestZstdIfItPays(t *testing.T) {
	random := func(n int) []byte { b := make([]byte, n); _, _ = rand.Read(b); return b }
	source := func(n int) []byte {
		return []byte(strings.Repeat("func handler(w http.ResponseWriter, r *http.Request) {\n\treturn\n}\n", n/64+1))[:n]
	}
	for _, tc := range []struct {
		name     string
		data     []byte
		wantZstd bool
	}{
		{"source shorter than the sample", source(300 << 10), true},
		{"source longer than the sample", source(zstdSample*2 + 12345), true},
		{"random shorter than the sample", random(300 << 10), false},
		{"random longer than the sample", random(zstdSample*2 + 12345), false},
		{"source, then random", append(source(zstdSample), random(zstdSample)...), true},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wire bytes.Buffer
			z := &zstdIfItPays{wire: &wire}
			for rest := tc.data; len(rest) > 0; {
				n := min(len(rest), 32<<10+7)
				if _, err := z.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
			isZstd := bytes.HasPrefix(wire.Bytes(), []byte{0x28, 0xb5, 0x2f, 0xfd})
			if isZstd != tc.wantZstd {
				t.Fatalf("zstd: %v, want %v (%d bytes for %d)", isZstd, tc.wantZstd, wire.Len(), len(tc.data))
			}
			got := wire.Bytes()
			if isZstd {
				r, err := zstd.NewReader(&wire)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				if got, err = io.ReadAll(r); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("the wire carried %d bytes that are not the stream's %d", len(got), len(tc.data))
			}
		})
	}
}
