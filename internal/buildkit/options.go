// Package buildkit drives one build on a BuildKit daemon: the dockerfile
// frontend through client.Solve, the progress display, and one pass over the
// status stream that counts cache hits, finds the failing step and classifies
// out-of-memory failures.
package buildkit

import (
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ProgressModes are the progress displays a build can show.
var ProgressModes = []string{"auto", "tty", "plain", "quiet", "rawjson"}

// InputError is bad user input: a setting or file that cannot be used as
// given. This package names the setting by its canonical name ("secrets",
// "build-args"); a front door renames it as its user writes it (--secret,
// the secrets input, a directives file's field).
type InputError struct {
	Field string // the setting or field, e.g. "secrets"
	Value string // what was given (never a secret value)
	Msg   string
}

func (e *InputError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Msg)
}

func inputErr(field, value, format string, a ...any) error {
	return &InputError{Field: field, Value: value, Msg: fmt.Sprintf(format, a...)}
}

// Secret is a build secret: from a file, an environment variable, or given
// inline (front doors that receive the value itself, e.g. an Action input).
type Secret struct {
	ID     string
	File   string
	Env    string
	Inline []byte
}

// String never shows the value.
func (s Secret) String() string { return "secret " + s.ID }

// ParseSecret reads docker's form: id=NAME,src=PATH | id=NAME,env=VAR | type=env,...
func ParseSecret(s string) (Secret, error) {
	fields, err := csvFields(s)
	if err != nil {
		return Secret{}, inputErr("secrets", s, "%v", err)
	}
	var sec Secret
	typ := ""
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Secret{}, inputErr("secrets", s, "field %q must be key=value (want id=NAME,src=PATH or id=NAME,env=VAR)", f)
		}
		switch strings.ToLower(k) {
		case "id":
			sec.ID = v
		case "src", "source":
			sec.File = v
		case "env":
			sec.Env = v
		case "type":
			if v != "file" && v != "env" {
				return Secret{}, inputErr("secrets", s, "type must be file or env, not %q", v)
			}
			typ = v
		default:
			return Secret{}, inputErr("secrets", s, "unknown key %q (want id, src, env, type)", k)
		}
	}
	if typ == "env" && sec.Env == "" {
		sec.Env, sec.File = sec.File, ""
	}
	if sec.ID == "" {
		switch {
		case sec.File != "":
			sec.ID = filepath.Base(sec.File)
		case sec.Env != "":
			sec.ID = sec.Env
		default:
			return Secret{}, inputErr("secrets", s, "needs id=NAME and src=PATH or env=VAR")
		}
	}
	if sec.File == "" && sec.Env == "" {
		// docker's shorthand: id=FOO alone reads the env var FOO.
		sec.Env = sec.ID
	}
	if sec.File != "" && sec.Env != "" {
		return Secret{}, inputErr("secrets", s, "give src or env, not both")
	}
	return sec, nil
}

// Read returns the secret's value (used to redact it from output).
func (s Secret) Read() ([]byte, error) {
	if s.Inline != nil {
		return s.Inline, nil
	}
	if s.File != "" {
		b, err := os.ReadFile(s.File)
		if err != nil {
			return nil, inputErr("secrets", "id="+s.ID, "cannot read src: %v", err)
		}
		return b, nil
	}
	v, ok := os.LookupEnv(s.Env)
	if !ok {
		return nil, inputErr("secrets", "id="+s.ID, "environment variable %s is not set", s.Env)
	}
	return []byte(v), nil
}

// ParseKeyValue reads NAME=VALUE as given to --build-arg and --label. A bare
// NAME takes its value from the environment, as docker does.
func ParseKeyValue(setting, s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if k == "" || strings.ContainsAny(k, " \t") {
		return "", "", inputErr(setting, s, "want NAME=VALUE")
	}
	if !ok {
		ev, set := os.LookupEnv(k)
		if !set {
			return "", "", inputErr(setting, s, "want NAME=VALUE (or NAME with %s set in the environment)", k)
		}
		v = ev
	}
	return k, v, nil
}

// NamedContext is an extra build context (docker buildx --build-context).
type NamedContext struct {
	Name string
	// exactly one of:
	Dir         string // local directory
	OCILayout   string // path to an OCI layout
	OCIRef      string // tag or digest inside the layout ("" = the only image)
	DockerImage string // image reference
}

// ParseNamedContext reads NAME=DIR | NAME=oci-layout://PATH[:TAG|@DIGEST] | NAME=docker-image://REF.
func ParseNamedContext(s string) (NamedContext, error) {
	name, v, ok := strings.Cut(s, "=")
	if !ok || name == "" || v == "" {
		return NamedContext{}, inputErr("build-contexts", s, "want NAME=DIR, NAME=oci-layout://PATH or NAME=docker-image://REF")
	}
	nc := NamedContext{Name: name}
	switch {
	case strings.HasPrefix(v, "oci-layout://"):
		p := strings.TrimPrefix(v, "oci-layout://")
		if i := strings.LastIndex(p, "@"); i >= 0 {
			p, nc.OCIRef = p[:i], p[i+1:]
		} else if i := strings.LastIndex(p, ":"); i > strings.LastIndex(p, "/") {
			p, nc.OCIRef = p[:i], p[i+1:]
		}
		if _, err := os.Stat(filepath.Join(p, "index.json")); err != nil {
			return NamedContext{}, inputErr("build-contexts", s, "%s is not an OCI layout (no index.json)", p)
		}
		nc.OCILayout = p
	case strings.HasPrefix(v, "docker-image://"):
		nc.DockerImage = strings.TrimPrefix(v, "docker-image://")
	case strings.Contains(v, "://"):
		return NamedContext{}, inputErr("build-contexts", s, "unsupported scheme (want a directory, oci-layout:// or docker-image://)")
	default:
		fi, err := os.Stat(v)
		if err != nil || !fi.IsDir() {
			return NamedContext{}, inputErr("build-contexts", s, "%s is not a directory", v)
		}
		nc.Dir = v
	}
	return nc, nil
}

// Output is where the result goes.
type Output struct {
	Type  string            // image, oci, docker, local, tar
	Dest  string            // file or dir for oci/docker/local/tar
	Attrs map[string]string // exporter attributes (name, push, …)
}

// ParseOutput reads buildx's --output: type=image,name=R,push=true | type=oci,dest=F | type=local,dest=D | a bare PATH (local).
func ParseOutput(s string) (Output, error) {
	if !strings.Contains(s, "=") {
		if s == "" || s == "-" {
			return Output{}, inputErr("outputs", s, "want type=…,dest=… or a directory")
		}
		return Output{Type: "local", Dest: s, Attrs: map[string]string{}}, nil
	}
	fields, err := csvFields(s)
	if err != nil {
		return Output{}, inputErr("outputs", s, "%v", err)
	}
	o := Output{Attrs: map[string]string{}}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Output{}, inputErr("outputs", s, "field %q must be key=value", f)
		}
		switch strings.ToLower(k) {
		case "type":
			o.Type = v
		case "dest":
			o.Dest = v
		default:
			o.Attrs[k] = v
		}
	}
	switch o.Type {
	case "registry":
		o.Type = "image"
		o.Attrs["push"] = "true"
	case "image":
	case "oci", "docker", "local", "tar":
		if o.Dest == "" {
			return Output{}, inputErr("outputs", s, "type=%s needs dest=PATH", o.Type)
		}
	case "":
		return Output{}, inputErr("outputs", s, "missing type= (image, registry, oci, docker, local, tar)")
	default:
		return Output{}, inputErr("outputs", s, "unknown type %q (image, registry, oci, docker, local, tar)", o.Type)
	}
	if o.Type == "image" && o.Attrs["name"] == "" {
		return Output{}, inputErr("outputs", s, "type=image needs name=REF (or use -t)")
	}
	return o, nil
}

// CacheEntry is a cache import or export (buildx --cache-from / --cache-to).
type CacheEntry struct {
	Type  string
	Attrs map[string]string
}

// ParseCache reads type=registry,ref=R[,mode=max] or a bare ref (registry).
func ParseCache(setting, s string) (CacheEntry, error) {
	if !strings.Contains(s, "=") {
		if s == "" {
			return CacheEntry{}, inputErr(setting, s, "empty")
		}
		return CacheEntry{Type: "registry", Attrs: map[string]string{"ref": s}}, nil
	}
	fields, err := csvFields(s)
	if err != nil {
		return CacheEntry{}, inputErr(setting, s, "%v", err)
	}
	e := CacheEntry{Attrs: map[string]string{}}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return CacheEntry{}, inputErr(setting, s, "field %q must be key=value", f)
		}
		if k == "type" {
			e.Type = v
		} else {
			e.Attrs[k] = v
		}
	}
	switch e.Type {
	case "registry":
		if e.Attrs["ref"] == "" {
			return CacheEntry{}, inputErr(setting, s, "type=registry needs ref=REF")
		}
	case "local", "inline", "gha", "s3", "azblob":
	default:
		return CacheEntry{}, inputErr(setting, s, "unknown cache type %q", e.Type)
	}
	return e, nil
}

// SSH is an SSH agent forward (--ssh default | ID=SOCKET|KEY[,KEY]).
type SSH struct {
	ID    string
	Paths []string
}

// ParseSSH reads docker's --ssh.
func ParseSSH(s string) (SSH, error) {
	id, rest, _ := strings.Cut(s, "=")
	if id == "" {
		return SSH{}, inputErr("ssh", s, "want default or ID=PATH")
	}
	var paths []string
	if rest != "" {
		paths = strings.Split(rest, ",")
	}
	if len(paths) == 0 && os.Getenv("SSH_AUTH_SOCK") == "" {
		return SSH{}, inputErr("ssh", s, "no path given and SSH_AUTH_SOCK is not set")
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return SSH{}, inputErr("ssh", s, "%s: no such agent socket or key file", p)
		}
	}
	return SSH{ID: id, Paths: paths}, nil
}

func csvFields(s string) ([]string, error) {
	r := csv.NewReader(strings.NewReader(s))
	r.TrimLeadingSpace = true
	f, err := r.Read()
	if err != nil {
		return nil, errors.New("not a comma-separated list of key=value")
	}
	return f, nil
}
