package launch_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/cosign/v2/pkg/cosign"

	"github.com/lian-build/action/internal/platforms"
	"github.com/lian-build/action/internal/report"
	"github.com/lian-build/action/internal/sign"
	"github.com/lian-build/action/internal/testenv"
)

// --sign-key signs a two-platform push: the index and each platform's
// manifest verify with the key (cosign's verification) and not with
// another; the key's password never shows in the report or the progress.
func TestTwoPlatformPushIsSigned(t *testing.T) {
	_, reg, s := multiWorld(t, "FROM scratch\nARG TARGETARCH\nCOPY ${TARGETARCH}.txt /arch.txt\n")
	const password = "c0sign-pa55-77"
	t.Setenv("COSIGN_PASSWORD", password)
	keys, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(password), nil })
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "cosign.key")
	if err := os.WriteFile(keyFile, keys.PrivateBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	s.SignKey = keyFile
	res, progress := build(t, s)
	if len(res.Signed) != 3 || res.SignedBy == "" {
		t.Fatalf("signed %v by %q, want the index and two manifests", res.Signed, res.SignedBy)
	}
	other, _ := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte("x"), nil })
	signed := sign.Registry{Registry: platforms.Registry{Insecure: []string{reg.Host}}}
	for _, d := range res.Signed {
		ref := reg.Host + "/team/multi@" + d
		if err := signed.Verify(context.Background(), ref, keys.PublicBytes); err != nil {
			t.Errorf("%s does not verify with the key: %v", ref, err)
		}
		if err := signed.Verify(context.Background(), ref, other.PublicBytes); err == nil {
			t.Errorf("%s verifies with another key", ref)
		}
	}
	// The real cosign (make tools) accepts the index with the public key.
	pub := filepath.Join(t.TempDir(), "cosign.pub")
	if err := os.WriteFile(pub, keys.PublicBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	otherPub := filepath.Join(t.TempDir(), "other.pub")
	if err := os.WriteFile(otherPub, other.PublicBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	cosignBin := testenv.Cosign(t)
	for _, ref := range []string{reg.Host + "/team/multi:1", reg.Host + "/team/multi@" + res.Signed[1]} {
		verify := func(key string) ([]byte, error) {
			return exec.Command(cosignBin, "verify", "--key", key, "--insecure-ignore-tlog", "--allow-http-registry", "--allow-insecure-registry", ref).CombinedOutput()
		}
		if out, err := verify(pub); err != nil {
			t.Errorf("cosign verify %s: %v\n%s", ref, err, out)
		}
		if out, err := verify(otherPub); err == nil {
			t.Errorf("cosign verify %s accepts another key:\n%s", ref, out)
		}
	}
	var rep strings.Builder
	report.Write(&rep, res)
	if !strings.Contains(rep.String(), "3 manifests (cosign, key "+res.SignedBy+")") {
		t.Errorf("the report does not say what was signed:\n%s", rep.String())
	}
	for _, text := range []string{rep.String(), progress} {
		if strings.Contains(text, password) || strings.Contains(text, string(keys.PrivateBytes[40:80])) {
			t.Errorf("the key or its password leaked:\n%s", text)
		}
	}
}
