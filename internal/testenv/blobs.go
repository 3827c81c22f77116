package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// RegistryHolding lists, for each needle, the blobs of the registry under
// root that hold it: as stored, decompressed (gzip, zstd) and, for a
// layer, in any file it unpacks to. A search for a secret passes a marker
// too, to prove the search sees inside layers.
func RegistryHolding(t testing.TB, root string, needles ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		texts := []string{string(b), string(decompressed(b))}
		for _, c := range LayerFiles(b) {
			texts = append(texts, c)
		}
		for _, n := range needles {
			for _, text := range texts {
				if strings.Contains(text, n) {
					out[n] = append(out[n], p)
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func decompressed(b []byte) []byte {
	if gz, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
		if raw, err := io.ReadAll(gz); err == nil {
			return raw
		}
	}
	if zr, err := zstd.NewReader(bytes.NewReader(b)); err == nil {
		defer zr.Close()
		if raw, err := io.ReadAll(zr); err == nil {
			return raw
		}
	}
	return b
}

// LayerFiles unpacks a (gzip, zstd or plain) layer tar; not a layer → nothing.
func LayerFiles(b []byte) map[string]string {
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(decompressed(b)))
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		if h.Typeflag == tar.TypeReg {
			c, _ := io.ReadAll(tr)
			out[h.Name] = string(c)
		}
	}
}
