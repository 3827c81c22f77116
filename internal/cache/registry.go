package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Auth is how to log in to the registry. Its String never shows a secret.
type Auth struct {
	Username string
	Password string // or a token
}

func (a Auth) String() string {
	if a.Username == "" && a.Password == "" {
		return "anonymous"
	}
	return "user " + a.Username + " (password set)"
}

// Registry talks to the cache registry for what BuildKit does not do: the
// promotion of a rollback staging ref.
type Registry struct {
	Auth     Auth
	Insecure bool
}

func (r Registry) options(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx)}
	if r.Auth.Username != "" || r.Auth.Password != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.Auth.Username, Password: r.Auth.Password}))
	} else {
		opts = append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	return opts
}

func (r Registry) parse(ref string) (name.Reference, error) {
	var o []name.Option
	if r.Insecure {
		o = append(o, name.Insecure)
	}
	return name.ParseReference(ref, o...)
}

// Promote copies the manifest at p.From to p.To (same repository: no blob copies).
func (r Registry) Promote(ctx context.Context, p Promotion) error {
	from, err := r.parse(p.From)
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	to, err := r.parse(p.To)
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	tag, ok := to.(name.Tag)
	if !ok {
		return fmt.Errorf("promote: %s is not a tag", p.To)
	}
	desc, err := remote.Get(from, r.options(ctx)...)
	if err != nil {
		return fmt.Errorf("promote %s: %w", p.From, err)
	}
	if err := remote.Tag(tag, desc, r.options(ctx)...); err != nil {
		return fmt.Errorf("promote %s → %s: %w", p.From, p.To, err)
	}
	// The staging tag stays: deleting it by digest would delete the promoted
	// manifest too (they are the same manifest). Registry GC policies prune it.
	return nil
}

// ImageLabels are the digest of what ref names (an image index when the
// image was pushed with attestations) and the config labels of its image;
// an image that does not exist is "" and nil, without an error.
func (r Registry) ImageLabels(ctx context.Context, ref string) (string, map[string]string, error) {
	n, err := r.parse(ref)
	if err != nil {
		return "", nil, err
	}
	desc, err := remote.Get(n, r.options(ctx)...)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", ref, err)
	}
	img, err := desc.Image()
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", nil, err
	}
	return desc.Digest.String(), cfg.Config.Labels, nil
}
