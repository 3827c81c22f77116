package pipeline_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
)

// The secret is usable in RUN --mount=type=secret and appears nowhere else:
// not in the progress output, the report, the image layers or the exported cache.
func TestSecretNeverLeaks(t *testing.T) {
	const secret = "s3cr3t-T0KEN-4f9a1c"
	t.Setenv("LIAN_TEST_TOKEN", secret)
	reg := testenv.StartRegistry(t)
	e := newEnv(t, nil, reg.Host)
	// The marker is the positive control: it is in a layer's file only (the
	// Dockerfile spells it in two pieces), so the scan below must decompress
	// the layers — zstd, as the cache plan exports them — to find it.
	const marker = "planted-marker-7c1e"
	dir := project(t, `FROM base
RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /tok.sha256 && echo "planted-""marker-7c1e" > /marker
RUN --mount=type=secret,id=tok echo "the token is $(cat /run/secrets/tok)"
RUN --mount=type=secret,id=tok test "$(cat /run/secrets/tok)" != "" && exit 7
`, map[string]string{})
	out := t.TempDir()
	var progress bytes.Buffer
	req := e.request(dir)
	req.Build.ProgressOut = &progress
	req.Build.Secrets = []buildkit.Secret{{ID: "tok", Env: "LIAN_TEST_TOKEN"}}
	// The cache plan's own exporter (zstd, OCI media types, mode=max).
	req.Cache = pipeline.CacheSettings{Registry: reg.Host, Insecure: true}
	// First build fails at the last step (after echoing the secret): the failure report is checked too.
	res, err := e.p.Run(context.Background(), req)
	if err == nil || res.Failure == nil || res.Failure.ExitCode != 7 {
		t.Fatalf("want the exit-7 step to fail, got %v / %+v", err, res.Failure)
	}
	report, _ := json.Marshal(res)
	if !strings.Contains(progress.String(), "the token is ***") {
		t.Fatalf("the echo step's output is not in the progress log (masked): %s", progress.String())
	}
	// Now a successful build of the first two steps, pushed with its cache.
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(strings.Join(strings.Split(mustRead(t, filepath.Join(dir, "Dockerfile")), "\n")[:3], "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	req.Build.Tags = []string{reg.Host + "/e2e/secret:v1"}
	req.Build.Push = true
	req.Build.Outputs = []buildkit.Output{{Type: "oci", Dest: filepath.Join(out, "img.tar"), Attrs: map[string]string{}}}
	res2, err := e.p.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress.String())
	}
	report2, _ := json.Marshal(res2)

	for name, text := range map[string]string{"progress": progress.String(), "report": string(report), "report2": string(report2), "error": err2s(err)} {
		if strings.Contains(text, secret) {
			t.Errorf("secret appears in the %s", name)
		}
	}
	// Every file of every layer of the exported image, and every blob in the registry (image and cache).
	layers := tarFiles(t, filepath.Join(out, "img.tar"))
	sum := sha256.Sum256([]byte(secret))
	if got := strings.TrimSpace(layers["tok.sha256"]); got != hex.EncodeToString(sum[:]) {
		t.Errorf("the secret was not usable in RUN --mount=type=secret: /tok.sha256 = %q", got)
	}
	for name, content := range layers {
		if strings.Contains(content, secret) {
			t.Errorf("secret appears in image file %s", name)
		}
	}
	if !reg.Touched("/v2/ci/e2e/manifests/cache") {
		t.Fatal("the cache was not exported")
	}
	held := testenv.RegistryHolding(t, reg.Root, secret, marker)
	if len(held[secret]) > 0 {
		t.Errorf("secret appears in registry blobs %v", held[secret])
	}
	if len(held[marker]) == 0 {
		t.Fatal("the scan never found the planted marker: it does not see inside the registry's layers")
	}
}

func err2s(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tarFiles reads an OCI image tarball and returns every regular file of every
// layer (and the blobs themselves, as text), keyed by path.
func tarFiles(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files["blob:"+h.Name] = string(b)
		for name, content := range testenv.LayerFiles(b) {
			files[name] = content
		}
	}
	return files
}

// Every progress mode masks the secret, rawjson included (its log data is
// base64 in "data", where a text mask cannot see it): the raw output, and
// for rawjson every decoded log chunk, are searched.
func TestSecretMaskedInEveryProgressMode(t *testing.T) {
	const secret = "s3cr3t-T0KEN-77b2e0"
	t.Setenv("LIAN_TEST_TOKEN", secret)
	e := newEnv(t, nil)
	// printf without a newline splits nothing here, but the secret is written
	// in two pieces with a pause, so that BuildKit sends two log chunks.
	dir := project(t, `FROM base
RUN --mount=type=secret,id=tok t=$(cat /run/secrets/tok); printf 'half: %s' "${t%%-*}"; sleep 0.3; echo "-${t#*-}"; echo "the token is $t"
`, map[string]string{})
	for _, mode := range []string{"plain", "rawjson", "auto", "tty", "quiet"} {
		t.Run(mode, func(t *testing.T) {
			var progress bytes.Buffer
			req := e.request(dir)
			req.Build.Progress, req.Build.NoCache, req.Build.ProgressOut = mode, true, &progress
			req.Build.Secrets = []buildkit.Secret{{ID: "tok", Env: "LIAN_TEST_TOKEN"}}
			if _, err := e.p.Run(context.Background(), req); err != nil {
				t.Fatalf("build: %v\n%s", err, progress.String())
			}
			out := progress.String()
			if strings.Contains(out, secret) {
				t.Fatalf("the secret appears in %s progress", mode)
			}
			if mode == "rawjson" {
				logs := rawJSONLogs(t, out)
				if !strings.Contains(logs, "the token is ***") {
					t.Fatalf("rawjson logs lack the masked line: %q", logs)
				}
				if strings.Contains(logs, secret) || strings.Contains(logs, "T0KEN-77b2e0") {
					t.Fatalf("the secret decodes from rawjson: %q", logs)
				}
			}
			if mode == "plain" && !strings.Contains(out, "the token is ***") {
				t.Fatalf("plain output lacks the masked line:\n%s", out)
			}
		})
	}
}

// rawJSONLogs decodes every log chunk of a rawjson progress stream.
func rawJSONLogs(t *testing.T, out string) string {
	t.Helper()
	var logs strings.Builder
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var s struct {
			Logs []struct {
				Data []byte `json:"data"`
			} `json:"logs"`
		}
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("rawjson: %v", err)
		}
		for _, l := range s.Logs {
			logs.Write(l.Data)
		}
	}
	return logs.String()
}

// The scanner's positive control for zstd (BuildKit reuses a layer's gzip
// blob for the cache when the image already pushed it): a zstd-compressed
// layer tar planted with a marker is read through.
func TestLayerScanReadsZstd(t *testing.T) {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	content := []byte("planted-marker-zstd")
	_ = tw.WriteHeader(&tar.Header{Name: "etc/m", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	_, _ = tw.Write(content)
	_ = tw.Close()
	var z bytes.Buffer
	zw, err := zstd.NewWriter(&z)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = zw.Write(layer.Bytes())
	_ = zw.Close()
	if bytes.Contains(z.Bytes(), content) {
		t.Fatal("the control is not compressed")
	}
	if got := testenv.LayerFiles(z.Bytes())["etc/m"]; got != string(content) {
		t.Fatalf("zstd layer read as %q", got)
	}
}
