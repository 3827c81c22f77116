// Package sign signs pushed images in cosign's format with a key, through
// sigstore's libraries: a signature `cosign verify --key` accepts.
package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/lian-build/action/internal/platforms"
)

// Key is a cosign private key, loaded.
type Key struct {
	sv signature.SignerVerifier
	// Fingerprint names the key in reports: the sha256 of its public key
	// (DER), first 16 hex digits.
	Fingerprint string
}

// ErrKey is a key that cannot be read; its text never quotes the key.
var ErrKey = errors.New("not a cosign private key, or a wrong password ($COSIGN_PASSWORD)")

// LoadKey reads a cosign private key (PEM, as `cosign generate-key-pair`
// writes it) with its password.
func LoadKey(pem, password []byte) (*Key, error) {
	sv, err := cosign.LoadPrivateKey(pem, password, nil)
	if err != nil {
		return nil, ErrKey
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, ErrKey
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return nil, ErrKey
	}
	sum := sha256.Sum256(der)
	return &Key{sv: sv, Fingerprint: hex.EncodeToString(sum[:8])}, nil
}

// PublicKey is the key's public half.
func (k *Key) PublicKey() (crypto.PublicKey, error) { return k.sv.PublicKey() }

// Registry is where signatures are read and written: the registry
// access of what the build pushed (platforms.Registry).
type Registry struct{ platforms.Registry }

func (r Registry) digest(s string) (name.Digest, error) {
	ref, err := r.Ref(s)
	if err != nil {
		return name.Digest{}, err
	}
	d, ok := ref.(name.Digest)
	if !ok {
		return name.Digest{}, fmt.Errorf("%s: want REPOSITORY@DIGEST", s)
	}
	return d, nil
}

func (r Registry) options(ctx context.Context, d name.Digest) []ociremote.Option {
	return []ociremote.Option{ociremote.WithRemoteOptions(r.Options(ctx, d)...)}
}

// Signature is one image signed: its digest, and the digest of the
// signature manifest written beside it.
type Signature struct {
	Subject, Manifest string
}

// Sign signs each REPOSITORY@DIGEST (an image index and the manifests it
// holds are each signed by their own digest) and writes the signatures
// beside them (the tag sha256-<hex>.sig, as cosign does); it returns what
// it signed.
func (k *Key) Sign(ctx context.Context, reg Registry, refs []string) ([]Signature, error) {
	var signed []Signature
	for _, ref := range refs {
		d, err := reg.digest(ref)
		if err != nil {
			return signed, fmt.Errorf("sign %s: %w", ref, err)
		}
		body, err := (&payload.Cosign{Image: d}).MarshalJSON()
		if err != nil {
			return signed, err
		}
		sig, err := k.sv.SignMessage(bytes.NewReader(body))
		if err != nil {
			return signed, fmt.Errorf("sign %s: %w", ref, err)
		}
		ociSig, err := static.NewSignature(body, base64.StdEncoding.EncodeToString(sig))
		if err != nil {
			return signed, err
		}
		opts := reg.options(ctx, d)
		se, err := ociremote.SignedEntity(d, opts...)
		if err != nil {
			return signed, fmt.Errorf("sign %s: %w", ref, err)
		}
		if se, err = mutate.AttachSignatureToEntity(se, ociSig); err != nil {
			return signed, err
		}
		if err := ociremote.WriteSignatures(d.Repository, se, opts...); err != nil {
			return signed, fmt.Errorf("writing the signature of %s: %w", ref, err)
		}
		md, err := reg.written(ctx, d)
		if err != nil {
			return signed, err
		}
		signed = append(signed, Signature{Subject: d.DigestStr(), Manifest: md})
	}
	return signed, nil
}

// written is the digest of the signature manifest of d, as the registry
// holds it.
func (r Registry) written(ctx context.Context, d name.Digest) (string, error) {
	tag, err := ociremote.SignatureTag(d, r.options(ctx, d)...)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(tag, r.Options(ctx, tag)...)
	if err != nil {
		return "", fmt.Errorf("reading back the signature of %s: %w", d, err)
	}
	return desc.Digest.String(), nil
}

// Targets are what signing an image at REPOSITORY@DIGEST covers: the
// digest itself and, for an image index, each image manifest it holds
// (attestation manifests aside).
func (r Registry) Targets(ctx context.Context, ref string) ([]string, error) {
	d, err := r.digest(ref)
	if err != nil {
		return nil, err
	}
	out := []string{ref}
	desc, err := remote.Get(d, r.Options(ctx, d)...)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", ref, err)
	}
	if !desc.MediaType.IsIndex() {
		return out, nil
	}
	_, im, err := platforms.IndexOf(desc)
	if err != nil {
		return nil, err
	}
	for _, m := range im.Manifests {
		if m.Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			out = append(out, d.Context().Name()+"@"+m.Digest.String())
		}
	}
	return out, nil
}

// Verify checks the signatures of REPOSITORY@DIGEST against a cosign
// public key (PEM) as `cosign verify --key` does, without a transparency
// log: nil when one verifies.
func (r Registry) Verify(ctx context.Context, ref string, pub []byte) error {
	d, err := r.digest(ref)
	if err != nil {
		return err
	}
	pk, err := cryptoutils.UnmarshalPEMToPublicKey(pub)
	if err != nil {
		return fmt.Errorf("the public key: %w", err)
	}
	v, err := signature.LoadVerifier(pk, crypto.SHA256)
	if err != nil {
		return err
	}
	_, _, err = cosign.VerifyImageSignatures(ctx, d, &cosign.CheckOpts{SigVerifier: v, IgnoreTlog: true, IgnoreSCT: true,
		ClaimVerifier: cosign.SimpleClaimVerifier, RegistryClientOpts: r.options(ctx, d)})
	return err
}
