package sign

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"

	"github.com/lian-build/action/internal/platforms"
	"github.com/lian-build/action/internal/testenv"
)

// A pushed image signed with a key verifies with that key (cosign's own
// verification, as `cosign verify --key` runs it) and not with another;
// the registry holds no byte of the private key.
func TestSignVerifiesWithTheKeyOnly(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ctx := context.Background()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.ParseReference(reg.Host+"/team/signed:1", name.Insecure)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	pass := []byte("k3y-pa55")
	keys, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return pass, nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(keys.PrivateBytes, []byte("wrong")); err != ErrKey {
		t.Fatalf("a wrong password: %v", err)
	}
	k, err := LoadKey(keys.PrivateBytes, pass)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/team/signed@" + d.String()
	signed, err := k.Sign(ctx, Registry{Registry: platforms.Registry{Insecure: []string{reg.Host}}}, []string{ref})
	if err != nil || len(signed) != 1 || signed[0].Subject != d.String() {
		t.Fatalf("signed %v, %v", signed, err)
	}
	sigRef, _ := name.ParseReference(reg.Host+"/team/signed:sha256-"+d.Hex+".sig", name.Insecure)
	if sd, err := remote.Head(sigRef); err != nil || sd.Digest.String() != signed[0].Manifest {
		t.Errorf("the signature manifest at %s is %v (%v); Sign said %s", sigRef, sd, err, signed[0].Manifest)
	}
	verify := func(pub []byte) error {
		return Registry{Registry: platforms.Registry{Insecure: []string{reg.Host}}}.Verify(ctx, ref, pub)
	}
	if err := verify(keys.PublicBytes); err != nil {
		t.Fatalf("the signature does not verify with its key: %v", err)
	}
	other, _ := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return pass, nil })
	if err := verify(other.PublicBytes); err == nil {
		t.Fatal("the signature verifies with another key")
	}
	err = filepath.Walk(reg.Root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, keys.PrivateBytes[40:80]) {
			t.Errorf("the private key is in the registry: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
