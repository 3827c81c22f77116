package buildkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/session/secrets"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/session/sshforward/sshprovider"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/progress/progressui"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"

	"github.com/lian-build/action/internal/safefile"
)

// Options is one build.
type Options struct {
	// Checkout, when set, is the repository checkout the build comes from:
	// the context and the Dockerfile must resolve inside it, symbolic links
	// included.
	Checkout      string
	ContextDir    string
	Dockerfile    string // path; default <ContextDir>/Dockerfile
	BuildArgs     map[string]string
	Labels        map[string]string
	Target        string
	Platforms     []string
	Secrets       []Secret
	SSH           []SSH
	NamedContexts []NamedContext
	Tags          []string
	Push          bool
	// Provenance is the SLSA provenance attestation of a pushed image
	// (Mode "": none).
	Provenance Provenance
	// SBOM is the SPDX SBOM attestation of the image (Generator "": none).
	SBOM SBOM
	// PushByDigest pushes the image to the tags' repositories by its
	// digest only, untagged (one leg of a multi-platform build, whose
	// index is tagged afterwards).
	PushByDigest bool
	Outputs      []Output
	CacheFrom    []CacheEntry
	CacheTo      []CacheEntry
	NoCache      bool
	// InsecureRegistries are HOST:PORT reached over plain HTTP (pushes and caches).
	InsecureRegistries []string
	// RegistryAuth logs in to registries by host; hosts not listed use ~/.docker/config.json.
	RegistryAuth map[string]Credential
	// Progress is the display mode: auto, tty, plain, quiet or rawjson.
	Progress    string
	ProgressOut io.Writer
	// ContextStream, when set, opens a listener on buildkitd's machine
	// whose connections reach this process (compute.ContextStreamer): the
	// context then goes as plain HTTP streams, not through the session's
	// file sync (stream.go). An error from it sends the context through
	// the session, and the report says why.
	ContextStream func(context.Context) (net.Listener, error)
	// ContextParts is how many parts a streamed context may be split into,
	// at most (its files spread over them by size; 0: 8); each part is a
	// stream of its own, and four go at a time.
	ContextParts int
	// ContextZstd compresses a streamed context on the wire when its first
	// 4 MiB shrink by a tenth or more (zstd, its fastest level; buildkitd's
	// unpack reads it).
	ContextZstd bool
}

// Credential logs in to one registry. String never shows the password.
type Credential struct {
	Username string
	Password string // a password or a token
}

func (c Credential) String() string { return "user " + c.Username + " (password set)" }

// secretValues reads the values of the build's secrets, to mask them in output.
func (o Options) secretValues() ([][]byte, error) {
	var vals [][]byte
	for _, s := range o.Secrets {
		v, err := s.Read()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	for _, c := range o.RegistryAuth {
		vals = append(vals, []byte(c.Password))
	}
	return vals, nil
}

// Validate checks everything that can be checked before a runner exists.
func (o Options) Validate() error {
	if err := o.confined(); err != nil {
		return err
	}
	fi, err := os.Stat(o.ContextDir)
	if err != nil {
		return inputErr("context", o.ContextDir, "does not exist")
	}
	if !fi.IsDir() {
		return inputErr("context", o.ContextDir, "is not a directory")
	}
	df := dockerfilePath(o.ContextDir, o.Dockerfile)
	if err := CheckDockerfile(df, o.Target); err != nil {
		return err
	}
	if _, _, err := readIgnoreFile(o, df); err != nil {
		return err
	}
	for _, t := range o.Tags {
		if err := ValidTag(t); err != nil {
			return err
		}
	}
	for _, p := range o.Platforms {
		if err := ValidPlatform(p); err != nil {
			return inputErr("platforms", p, "%v", err)
		}
	}
	if _, err := o.secretValues(); err != nil {
		return err
	}
	if o.Progress != "" && !slices.Contains(ProgressModes, o.Progress) {
		return inputErr("progress", o.Progress, "want auto, tty, plain, quiet or rawjson")
	}
	if o.Push && len(o.Tags) == 0 {
		return inputErr("push", "", "needs at least one -t/--tag")
	}
	if err := o.checkProvenance(); err != nil {
		return err
	}
	return nil
}

// confined refuses a path of a repository's build that leads outside its
// checkout; the error names the setting and never the file it leads to.
func (o Options) confined() error {
	if o.Checkout == "" {
		return nil
	}
	check := func(field, p string) error {
		if err := safefile.Confine(o.Checkout, p); err != nil {
			var ee *safefile.EscapeError
			if errors.As(err, &ee) {
				return inputErr(field, p, "leads outside the repository's checkout (through .., an absolute path or a symbolic link); refused")
			}
			return inputErr(field, p, "cannot be resolved: %v", errors.Unwrap(err))
		}
		return nil
	}
	if err := check("context", o.ContextDir); err != nil {
		return err
	}
	// Named contexts are the operator's (a repository's directives have
	// none): they may lie anywhere on the machine.
	return check("file", dockerfilePath(o.ContextDir, o.Dockerfile))
}

// ValidPlatform checks a platform as BuildKit reads it.
func ValidPlatform(p string) error {
	if _, err := platforms.Parse(p); err != nil {
		return errors.New("want OS/ARCH[/VARIANT], e.g. linux/arm64")
	}
	return nil
}

// ValidTag checks an image reference the way docker does (lower-case
// repository, optional tag or digest).
func ValidTag(t string) error {
	if _, err := reference.ParseNormalizedNamed(t); err != nil {
		return inputErr("tags", t, "%v", err)
	}
	return nil
}

// Report is what a build produced.
type Report struct {
	Steps            StepCounts        `json:"steps"`
	Digest           string            `json:"digest,omitempty"`
	ExporterResponse map[string]string `json:"-"`
	// ContextStream is how a streamed context went (nil: through the
	// session, as asked).
	ContextStream *ContextStream `json:"context_stream,omitempty"`
}

// ContextStream is a context sent as one stream, or why it was not.
type ContextStream struct {
	Bytes    int64  `json:"bytes"`               // sent, compressed or not
	TarBytes int64  `json:"tar_bytes,omitempty"` // the tars', before compression
	Parts    int    `json:"parts,omitempty"`     // how many streams: the context's parts
	Note     string `json:"note,omitempty"`      // why it went through the session instead
}

// Failure describes the step that failed.
type Failure struct {
	Step     string   `json:"step,omitempty"`
	Error    string   `json:"error"`
	File     string   `json:"file,omitempty"`
	Line     int      `json:"line,omitempty"`
	ExitCode int      `json:"exit_code"`
	LogTail  []string `json:"log_tail,omitempty"`
}

// BuildError is a failed build, with what the status stream said about it.
type BuildError struct {
	Failure Failure
	Report  Report // steps seen before the failure
	Err     error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	if e.Failure.Step != "" {
		b.WriteString(e.Failure.Step)
		if e.Failure.File != "" {
			fmt.Fprintf(&b, " (%s:%d)", e.Failure.File, e.Failure.Line)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Failure.Error)
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

// Build runs one build on c, its context streamed when o says so.
func Build(ctx context.Context, c *client.Client, o Options) (Report, error) {
	def, err := readDefinition(o)
	if err != nil {
		return Report{}, err
	}
	so, err := solveOpt(o, def)
	if err != nil {
		return Report{}, err
	}
	masks, err := o.secretValues()
	if err != nil {
		return Report{}, err
	}
	var cs *contextServer
	var stream *ContextStream
	if o.ContextStream != nil {
		if cs, stream, err = streamContext(ctx, o, def.excludes, &so); err != nil {
			return Report{}, err
		}
	}
	rep, err := solve(ctx, c, o, so, masks)
	if cs != nil {
		serr := cs.stop()
		stream.Bytes, stream.TarBytes = cs.Sent()
		if serr != nil && err != nil {
			err = fmt.Errorf("sending the context %s: %v: %w", o.ContextDir, serr, err)
		}
		if err != nil && ctx.Err() == nil && cs.unreached(err) {
			// The daemon's loopback is not sshd's (buildkitd in a network
			// namespace of its own): once more, through the session.
			stream = &ContextStream{Note: "the context went through the session: buildkitd could not reach the forward on its loopback (" + cs.Addr + ")"}
			if so, err = solveOpt(o, def); err == nil {
				rep, err = solve(ctx, c, o, so, masks)
			}
		}
	}
	rep.ContextStream = stream
	return rep, err
}

// solve runs the solve and the progress display in an errgroup, the
// status stream teed into a tracker.
func solve(ctx context.Context, c *client.Client, o Options, so client.SolveOpt, masks [][]byte) (Report, error) {
	out := o.ProgressOut
	if out == nil {
		out = io.Discard
	}
	// Secrets are masked in everything shown: the display and the failure report.
	red := NewRedactor(out, masks)
	defer red.Flush()
	mode := progressui.DisplayMode(o.Progress)
	if mode == "" {
		mode = progressui.AutoMode
	}
	var pw io.Writer = out
	if len(masks) > 0 {
		// The stream is masked (statusRedactor); the text is masked again,
		// for what the display adds. A TTY display redraws in place and
		// cannot be masked line by line.
		pw = red
		if mode == progressui.TtyMode || mode == progressui.AutoMode {
			mode = progressui.PlainMode
		}
	}
	disp, err := progressui.NewDisplay(pw, mode)
	if err != nil {
		return Report{}, fmt.Errorf("progress display: %w", err)
	}

	tr := newTracker()
	statusCh := make(chan *client.SolveStatus)
	dispCh := make(chan *client.SolveStatus)
	var resp *client.SolveResponse
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		var err error
		resp, err = c.Solve(ectx, nil, so, statusCh)
		return err
	})
	sr := newStatusRedactor(red)
	eg.Go(func() error {
		defer close(dispCh)
		for s := range statusCh {
			s = sr.redact(s)
			tr.update(s)
			dispCh <- s
		}
		if s := sr.flush(); s != nil {
			tr.update(s)
			dispCh <- s
		}
		return nil
	})
	eg.Go(func() error {
		// Not the group's context: the display keeps reporting the error that cancels it.
		_, err := disp.UpdateFrom(context.WithoutCancel(ctx), dispCh)
		return err
	})
	err = eg.Wait()
	rep := Report{Steps: tr.counts(o.NoCache)}
	if err != nil {
		return rep, buildError(err, tr, rep, red)
	}
	rep.ExporterResponse = resp.ExporterResponse
	rep.Digest = resp.ExporterResponse["containerimage.digest"]
	return rep, nil
}

func buildError(err error, tr *tracker, rep Report, red *Redactor) error {
	f := Failure{Error: red.RedactString(cleanErr(err)), ExitCode: ExitCode(err)}
	if name, msg, logs, ok := tr.failed(); ok {
		f.Step = name
		if f.Error == "" {
			f.Error = red.RedactString(msg)
		}
		if len(logs) > 30 {
			logs = logs[len(logs)-30:]
		}
		for _, l := range logs {
			f.LogTail = append(f.LogTail, red.RedactString(l))
		}
	}
	for _, src := range errdefs.Sources(err) {
		if src.Info == nil || len(src.Ranges) == 0 {
			continue
		}
		f.File = src.Info.Filename
		f.Line = int(src.Ranges[0].Start.Line)
		break
	}
	return &BuildError{Failure: f, Report: rep, Err: err}
}

var rpcPrefix = regexp.MustCompile(`^rpc error: code = \w+ desc = `)

func cleanErr(err error) string { return rpcPrefix.ReplaceAllString(err.Error(), "") }

func solveOpt(o Options, def definition) (client.SolveOpt, error) {
	ctxFS, err := fsutil.NewFS(o.ContextDir)
	if err != nil {
		return client.SolveOpt{}, inputErr("context", o.ContextDir, "%v", err)
	}
	df := dockerfilePath(o.ContextDir, o.Dockerfile)
	dfFS, err := fsutil.NewFS(filepath.Dir(df))
	if err != nil {
		return client.SolveOpt{}, inputErr("file", df, "%v", err)
	}
	// The frontend reads the definition from its input; the directory stays
	// on the session for a # syntax= frontend too old to take inputs.
	so := client.SolveOpt{
		Frontend:       "dockerfile.v0",
		FrontendAttrs:  frontendAttrs(o, def.name),
		LocalMounts:    map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		FrontendInputs: map[string]llb.State{"dockerfile": def.state()},
	}
	if err := addNamedContexts(&so, o.NamedContexts); err != nil {
		return so, err
	}
	if so.Exports, err = exports(o); err != nil {
		return so, err
	}
	for _, e := range o.CacheFrom {
		so.CacheImports = append(so.CacheImports, client.CacheOptionsEntry{Type: e.Type, Attrs: cacheAttrs(e, o.InsecureRegistries)})
	}
	for _, e := range o.CacheTo {
		so.CacheExports = append(so.CacheExports, client.CacheOptionsEntry{Type: e.Type, Attrs: cacheAttrs(e, o.InsecureRegistries)})
	}
	so.Session, err = attachables(o)
	return so, err
}

// frontendAttrs are the dockerfile frontend's options.
func frontendAttrs(o Options, filename string) map[string]string {
	attrs := map[string]string{"filename": filename}
	for k, v := range o.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	for k, v := range o.Labels {
		attrs["label:"+k] = v
	}
	if o.Target != "" {
		attrs["target"] = o.Target
	}
	if len(o.Platforms) > 0 {
		attrs["platform"] = strings.Join(o.Platforms, ",")
	}
	if o.NoCache {
		attrs["no-cache"] = ""
	}
	o.Provenance.attrs(attrs)
	o.SBOM.attrs(attrs)
	return attrs
}

// addNamedContexts passes --build-context: local directories as mounts,
// OCI layouts as content stores, images by reference.
func addNamedContexts(so *client.SolveOpt, contexts []NamedContext) error {
	attrs := so.FrontendAttrs
	for _, nc := range contexts {
		switch {
		case nc.Dir != "":
			fs, err := fsutil.NewFS(nc.Dir)
			if err != nil {
				return inputErr("build-contexts", nc.Name, "%v", err)
			}
			key := "ctx-" + nc.Name
			so.LocalMounts[key] = fs
			attrs["context:"+nc.Name] = "local:" + key
		case nc.DockerImage != "":
			attrs["context:"+nc.Name] = "docker-image://" + nc.DockerImage
		case nc.OCILayout != "":
			store, dgst, err := openOCILayout(nc.OCILayout, nc.OCIRef)
			if err != nil {
				return inputErr("build-contexts", nc.Name+"=oci-layout://"+nc.OCILayout, "%v", err)
			}
			if so.OCIStores == nil {
				so.OCIStores = map[string]content.Store{}
			}
			id := storeID(nc.Name)
			so.OCIStores[id] = store
			attrs["context:"+nc.Name] = "oci-layout://" + id + "@" + dgst
		}
	}
	return nil
}

// attachables are the session's providers: registry auth (in memory only),
// secrets, SSH.
func attachables(o Options) ([]session.Attachable, error) {
	dockerCfg := config.LoadDefaultConfigFile(io.Discard)
	for host, c := range o.RegistryAuth {
		if dockerCfg.AuthConfigs == nil {
			dockerCfg.AuthConfigs = map[string]types.AuthConfig{}
		}
		dockerCfg.AuthConfigs[host] = types.AuthConfig{ServerAddress: host, Username: c.Username, Password: c.Password}
	}
	// In memory only: credentials are never written to a config file.
	dockerCfg.Filename = ""
	attach := []session.Attachable{authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: authprovider.LoadAuthConfig(dockerCfg),
	})}
	if len(o.Secrets) > 0 {
		var srcs []secretsprovider.Source
		inline := map[string][]byte{}
		for _, s := range o.Secrets {
			if s.Inline != nil {
				inline[s.ID] = s.Inline
				continue
			}
			srcs = append(srcs, secretsprovider.Source{ID: s.ID, FilePath: s.File, Env: s.Env})
		}
		store, err := secretsprovider.NewStore(srcs)
		if err != nil {
			return nil, inputErr("secrets", "", "%v", innermost(err))
		}
		attach = append(attach, secretsprovider.NewSecretProvider(secretStore{inline: inline, files: store}))
	}
	if len(o.SSH) > 0 {
		confs := make([]sshprovider.AgentConfig, 0, len(o.SSH))
		for _, s := range o.SSH {
			confs = append(confs, sshprovider.AgentConfig{ID: s.ID, Paths: s.Paths})
		}
		sp, err := sshprovider.NewSSHAgentProvider(confs)
		if err != nil {
			return nil, inputErr("ssh", "", "cannot use the agent or keys: %v", innermost(err))
		}
		attach = append(attach, sp)
	}
	return attach, nil
}

// innermost is the root cause of a wrapped error (BuildKit's providers wrap
// theirs with Go-syntax dumps of their configuration).
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// ResultKept reports whether the build's result goes anywhere: pushed tags,
// or an output that writes a registry, a directory or a tarball. Without one
// the image stays only in the runner's cache, which is destroyed.
func (o Options) ResultKept() bool {
	if o.Pushes() {
		return true
	}
	for _, op := range o.Outputs {
		if op.Type != "image" {
			return true
		}
	}
	return false
}

// Pushes reports whether the build pushes an image to a registry: pushed
// tags, a registry output, or an image output with push=true.
func (o Options) Pushes() bool {
	if o.Push && len(o.Tags) > 0 {
		return true
	}
	for _, op := range o.Outputs {
		if op.Type == "registry" || (op.Type == "image" && op.Attrs["push"] == "true") {
			return true
		}
	}
	return false
}

func exports(o Options) ([]client.ExportEntry, error) {
	var out []client.ExportEntry
	if len(o.Tags) > 0 {
		attrs := map[string]string{"name": strings.Join(o.Tags, ",")}
		if o.Push {
			attrs["push"] = "true"
		}
		if o.Push && o.PushByDigest {
			attrs["push-by-digest"], attrs["oci-mediatypes"] = "true", "true"
		}
		if anyInsecure(o.Tags, o.InsecureRegistries) {
			attrs["registry.insecure"] = "true"
		}
		out = append(out, client.ExportEntry{Type: client.ExporterImage, Attrs: attrs})
	}
	for _, op := range o.Outputs {
		attrs := map[string]string{}
		for k, v := range op.Attrs {
			attrs[k] = v
		}
		e := client.ExportEntry{Type: op.Type, Attrs: attrs}
		switch op.Type {
		case "image":
			e.Type = client.ExporterImage
			if anyInsecure(strings.Split(attrs["name"], ","), o.InsecureRegistries) {
				attrs["registry.insecure"] = "true"
			}
		case "local":
			e.OutputDir = op.Dest
		case "oci", "docker", "tar":
			if attrs["tar"] == "false" {
				e.OutputDir = op.Dest
				break
			}
			dest := op.Dest
			e.Output = func(map[string]string) (io.WriteCloser, error) {
				if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
					return nil, err
				}
				return os.Create(dest)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func cacheAttrs(e CacheEntry, insecure []string) map[string]string {
	attrs := map[string]string{}
	for k, v := range e.Attrs {
		attrs[k] = v
	}
	if e.Type == "registry" && anyInsecure([]string{attrs["ref"]}, insecure) {
		attrs["registry.insecure"] = "true"
	}
	return attrs
}

func anyInsecure(refs, insecure []string) bool {
	for _, r := range refs {
		host, _, _ := strings.Cut(strings.TrimSpace(r), "/")
		for _, h := range insecure {
			if host == h {
				return true
			}
		}
	}
	return false
}

var storeIDClean = regexp.MustCompile(`[^a-z0-9]+`)

func storeID(name string) string {
	return "ctx-" + strings.Trim(storeIDClean.ReplaceAllString(strings.ToLower(name), "-"), "-")
}

// openOCILayout opens a layout as a content store and finds the manifest to use:
// by digest, by tag (org.opencontainers.image.ref.name), or the only one.
func openOCILayout(dir, ref string) (content.Store, string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, "", err
	}
	var idx ocispecs.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, "", fmt.Errorf("%s: %w", filepath.Join(dir, "index.json"), err)
	}
	var dgst string
	switch {
	case strings.HasPrefix(ref, "sha256:"):
		dgst = ref
	case ref != "":
		for _, m := range idx.Manifests {
			if m.Annotations[ocispecs.AnnotationRefName] == ref {
				dgst = m.Digest.String()
			}
		}
		if dgst == "" {
			return nil, "", fmt.Errorf("no image tagged %q in the layout", ref)
		}
	case len(idx.Manifests) == 1:
		dgst = idx.Manifests[0].Digest.String()
	default:
		var names []string
		for _, m := range idx.Manifests {
			names = append(names, m.Annotations[ocispecs.AnnotationRefName])
		}
		sort.Strings(names)
		return nil, "", fmt.Errorf("the layout holds %d images (%s); name one with :TAG or @DIGEST", len(idx.Manifests), strings.Join(names, ", "))
	}
	store, err := local.NewStore(dir)
	if err != nil {
		return nil, "", err
	}
	return store, dgst, nil
}

// ErrIsBuild reports whether err is a failed build (as opposed to a failure to start one).
func ErrIsBuild(err error) (*BuildError, bool) {
	var be *BuildError
	ok := errors.As(err, &be)
	return be, ok
}

// secretStore serves inline secrets first, then file and env ones.
type secretStore struct {
	inline map[string][]byte
	files  secrets.SecretStore
}

func (s secretStore) GetSecret(ctx context.Context, id string) ([]byte, error) {
	if v, ok := s.inline[id]; ok {
		return v, nil
	}
	return s.files.GetSecret(ctx, id)
}
