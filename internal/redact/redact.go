// Package redact hides credentials in URLs and in the errors that quote
// them, before they reach a log, a help text or a message.
package redact

import (
	"net/url"
	"strings"
)

// Mask is what a hidden credential shows as.
const Mask = "***"

// URL hides the password (or a user name that is a token) and any
// credential-looking query parameter of a URL; text that is not a URL with
// credentials comes back unchanged.
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return s
	}
	changed := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Mask)
		} else {
			u.User = url.User(Mask)
		}
		changed = true
	}
	if q := u.Query(); len(q) > 0 {
		for k := range q {
			if credentialKey(k) {
				q.Set(k, Mask)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		return s
	}
	return strings.NewReplacer("%2A%2A%2A", Mask).Replace(u.String())
}

func credentialKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"token", "password", "secret", "key", "auth"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// Secrets of a URL: its password, or a user name standing for a token.
func Secrets(s string) []string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return nil
	}
	if p, ok := u.User.Password(); ok && p != "" {
		return []string{p}
	}
	if n := u.User.Username(); n != "" {
		return []string{n}
	}
	return nil
}

// Error is an error whose message has every secret replaced by Mask; it
// unwraps to the original, so errors.Is and errors.As still see it.
type Error struct {
	err     error
	secrets []string
}

// Err wraps err so that none of secrets shows in its message (nil stays nil).
func Err(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var keep []string
	for _, s := range secrets {
		if s != "" {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return err
	}
	return &Error{err: err, secrets: keep}
}

func (e *Error) Error() string {
	msg := e.err.Error()
	for _, s := range e.secrets {
		msg = strings.ReplaceAll(msg, s, Mask)
		if esc := url.QueryEscape(s); esc != s {
			msg = strings.ReplaceAll(msg, esc, Mask)
		}
	}
	return msg
}

func (e *Error) Unwrap() error { return e.err }
