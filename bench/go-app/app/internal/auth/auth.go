// Package auth issues and checks signed bearer tokens.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Claims are what a token says.
type Claims struct {
	Subject string `json:"sub"`
	Admin   bool   `json:"adm,omitempty"`
	Expires int64  `json:"exp"`
}

// Signer signs and verifies tokens with one key.
type Signer struct {
	Key []byte
	Now func() time.Time
}

var enc = base64.RawURLEncoding

// Issue makes a token valid for ttl.
func (s Signer) Issue(sub string, admin bool, ttl time.Duration) (string, error) {
	c := Claims{Subject: sub, Admin: admin, Expires: s.now().Add(ttl).Unix()}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	p := enc.EncodeToString(body)
	return p + "." + enc.EncodeToString(s.mac(p)), nil
}

// Verify checks a token's signature and expiry.
func (s Signer) Verify(tok string) (Claims, error) {
	var c Claims
	p, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return c, errors.New("malformed token")
	}
	got, err := enc.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(p)) {
		return c, errors.New("bad signature")
	}
	body, err := enc.DecodeString(p)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return c, err
	}
	if s.now().Unix() > c.Expires {
		return c, errors.New("expired")
	}
	return c, nil
}

func (s Signer) mac(p string) []byte {
	h := hmac.New(sha256.New, s.Key)
	h.Write([]byte(p))
	return h.Sum(nil)
}

func (s Signer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// FromRequest verifies the request's bearer token.
func (s Signer) FromRequest(r *http.Request) (Claims, error) {
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Bearer ") {
		return Claims{}, errors.New("no bearer token")
	}
	return s.Verify(strings.TrimPrefix(h, "Bearer "))
}
