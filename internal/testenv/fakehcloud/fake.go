// Package fakehcloud is a fake Hetzner Cloud API for tests and for trying
// `--provider hcloud` without an account. It speaks the real wire format
// (hcloud-go's own schema types), records every request, and injects the
// faults the real service has: 429 with RateLimit-Reset, resource_unavailable
// in a location, a 5xx on delete. "Create server" asks a Hosts implementation
// for a machine (a runner host); "delete server" stops it.
package fakehcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
	"golang.org/x/crypto/ssh"
)

// Request is one recorded API request.
type Request struct {
	Method, Path, Query string
	Body                string
	Authorized          bool // a bearer token came in the Authorization header
}

// Fault answers matching requests with an error instead of serving them.
type Fault struct {
	Method     string // "" matches any
	PathPrefix string // e.g. "/servers"
	Location   string // for POST /servers: only creates in this location
	Times      int    // how many requests it answers (0: every one)
	Status     int
	Code       string // Hetzner error code: resource_unavailable, rate_limit_exceeded, …
	ResetIn    time.Duration
	// After answers with the fault once the request is done (a server
	// made behind a gateway that then failed), not instead of it.
	After bool
}

// HostSpec is what a runner host is asked to be.
type HostSpec struct {
	ServerID   int64
	Name       string
	ServerType string
	Cores      int
	MemoryGB   float32
	UserData   string
	// VendorData is what the platform adds to the user's (Proxmox: a
	// cicustom vendor snippet); Hetzner gives none.
	VendorData string
	SSHKeys    []string // authorized_keys lines
	Labels     map[string]string
	Volumes    []VolumeSpec // attached at creation, mounted by the machine
	// Disk is the disk the machine boots, as a host kept it (Halter):
	// a Proxmox template's, or the VM's own from before a stop. "": the
	// host's stock image.
	Disk string
}

// Halter is a host whose machines have disks that outlive a stop: Halt
// stops the machine as `qm stop` does (its emulator exits cleanly) and
// keeps its disk, a file that boots again as HostSpec.Disk.
type Halter interface {
	Halt(ctx context.Context, serverID int64) (disk string, err error)
}

// Hosts starts and stops the machines behind servers.
type Hosts interface {
	Start(ctx context.Context, spec HostSpec) (ipv4 string, err error)
	Stop(ctx context.Context, serverID int64) error
}

// Fake is the API.
type Fake struct {
	Server *httptest.Server
	Token  string
	hosts  Hosts
	// Ledger bills the servers the fake makes, every started hour.
	Ledger Ledger
	// VolumeDir holds the volumes' images (default a directory in TMPDIR).
	VolumeDir string

	mu       sync.Mutex
	nextID   int64
	requests []Request
	faults   []*Fault
	servers  map[int64]*schema.Server
	keys     map[int64]*schema.SSHKey
	vols     map[int64]*schema.Volume
	// closedVolumes is how many volumes Close removed.
	closedVolumes int
	actions       map[int64]*schema.Action
	// snapshots are the images made with create_image.
	snapshots []schema.Image
}

// ServerTypes are the types the fake offers: Hetzner's ARM (cax) and shared
// x86 (cpx) lines, with their prices per location in the API's schema.
var ServerTypes = withPrices([]schema.ServerType{
	{ID: 45, Name: "cax11", Cores: 2, Memory: 4, Disk: 40, Architecture: "arm", CPUType: "shared"},
	{ID: 93, Name: "cax21", Cores: 4, Memory: 8, Disk: 80, Architecture: "arm", CPUType: "shared"},
	{ID: 94, Name: "cax31", Cores: 8, Memory: 16, Disk: 160, Architecture: "arm", CPUType: "shared"},
	{ID: 95, Name: "cax41", Cores: 16, Memory: 32, Disk: 320, Architecture: "arm", CPUType: "shared"},
	{ID: 22, Name: "cpx21", Cores: 3, Memory: 4, Disk: 80, Architecture: "x86", CPUType: "shared"},
	{ID: 23, Name: "cpx31", Cores: 4, Memory: 8, Disk: 160, Architecture: "x86", CPUType: "shared"},
	{ID: 24, Name: "cpx41", Cores: 8, Memory: 16, Disk: 240, Architecture: "x86", CPUType: "shared"},
	{ID: 25, Name: "cpx51", Cores: 16, Memory: 32, Disk: 360, Architecture: "x86", CPUType: "shared"},
})

// listPrices are net EUR prices per hour and per month (German and Finnish
// locations), as Hetzner's price list gives them; the API serves them as
// decimal strings with ten places, gross with 19 % VAT.
var listPrices = map[string][2]float64{
	"cax11": {0.0060, 3.79}, "cax21": {0.0104, 6.49}, "cax31": {0.0200, 12.49}, "cax41": {0.0392, 24.49},
	"cpx21": {0.0135, 8.39}, "cpx31": {0.0245, 15.29}, "cpx41": {0.0451, 28.09}, "cpx51": {0.0986, 61.49},
}

func withPrices(types []schema.ServerType) []schema.ServerType {
	for i, t := range types {
		p := listPrices[t.Name]
		for _, loc := range []string{"fsn1", "nbg1", "hel1"} {
			types[i].Prices = append(types[i].Prices, schema.PricingServerTypePrice{Location: loc,
				PriceHourly: price(p[0]), PriceMonthly: price(p[1]), IncludedTraffic: 20 << 40, PricePerTBTraffic: price(1)})
		}
	}
	return types
}

func price(net float64) schema.Price {
	return schema.Price{Net: strconv.FormatFloat(net, 'f', 10, 64), Gross: strconv.FormatFloat(net*1.19, 'f', 10, 64)}
}

// Locations are the locations the fake offers.
var Locations = []schema.Location{
	{ID: 1, Name: "fsn1", City: "Falkenstein", Country: "DE", NetworkZone: "eu-central"},
	{ID: 2, Name: "nbg1", City: "Nuremberg", Country: "DE", NetworkZone: "eu-central"},
	{ID: 3, Name: "hel1", City: "Helsinki", Country: "FI", NetworkZone: "eu-central"},
}

// Images are the images the fake offers.
var Images = []schema.Image{
	{ID: 114690387, Name: ptr("debian-12"), Type: "system", Status: "available", OSFlavor: "debian", Architecture: "arm"},
	{ID: 114690389, Name: ptr("debian-12"), Type: "system", Status: "available", OSFlavor: "debian", Architecture: "x86"},
	{ID: 200000001, Type: "snapshot", Status: "available", OSFlavor: "debian", Architecture: "arm", Labels: map[string]string{"lian-build/runner-image": "v1"}},
}

func ptr[T any](v T) *T { return &v }

// New starts the fake on a loopback port; hosts may be nil (servers get
// unroutable TEST-NET addresses).
func New(token string, hosts Hosts) *Fake {
	f := newFake(token, hosts)
	f.Server = httptest.NewServer(f.handler())
	return f
}

// NewOn starts the fake on a given listener (the standalone fake).
func NewOn(ln net.Listener, token string, hosts Hosts) *Fake {
	f := newFake(token, hosts)
	f.Server = httptest.NewUnstartedServer(f.handler())
	f.Server.Listener.Close()
	f.Server.Listener = ln
	f.Server.Start()
	return f
}

func newFake(token string, hosts Hosts) *Fake {
	return &Fake{Token: token, hosts: hosts, nextID: 1000, servers: map[int64]*schema.Server{}, keys: map[int64]*schema.SSHKey{}, vols: map[int64]*schema.Volume{}, actions: map[int64]*schema.Action{}}
}

func (f *Fake) handler() http.Handler { return http.StripPrefix("/v1", http.HandlerFunc(f.serve)) }

// Endpoint is the API URL, as HCLOUD_ENDPOINT takes it.
func (f *Fake) Endpoint() string { return f.Server.URL + "/v1" }

// Close stops every host still running, then the API.
func (f *Fake) Close() {
	f.mu.Lock()
	ids := make([]int64, 0, len(f.servers))
	for id := range f.servers {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	for _, id := range ids {
		if f.hosts != nil {
			_ = f.hosts.Stop(context.Background(), id)
		}
	}
	f.Server.Close()
	// The volumes end with the fake: their images (sparse, 10 GB and up)
	// are removed, and the directory the fake made for them.
	f.mu.Lock()
	vols, dir := len(f.vols), f.VolumeDir
	f.vols = map[int64]*schema.Volume{}
	f.mu.Unlock()
	if dir != "" {
		imgs, _ := filepath.Glob(filepath.Join(dir, "volume-*.img"))
		for _, img := range imgs {
			_ = os.Remove(img)
		}
		_ = os.Remove(dir) // only when empty: a directory the caller gave keeps the rest
	}
	f.closedVolumes = vols
}

// Inject adds a fault.
func (f *Fake) Inject(fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &fault)
}

// Requests are the requests received so far.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// labelValueRE and labelKeyRE are Hetzner's label rules: a value of at
// most 63 characters, alphanumeric at both ends, '-', '_' and '.' between;
// a key an optional DNS prefix and '/', then a name by the value's rules.
var (
	labelValueRE = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	labelKeyRE   = regexp.MustCompile(`^(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
)

// validLabels refuses labels the real API refuses (invalid_input).
func validLabels(labels map[string]string) error {
	for k, v := range labels {
		if !labelKeyRE.MatchString(k) {
			return fmt.Errorf("labels: invalid key %q", k)
		}
		if !labelValueRE.MatchString(v) {
			return fmt.Errorf("labels: invalid value %q for %s (at most 63 characters, alphanumeric at both ends)", v, k)
		}
	}
	return nil
}

// KeyNames are the names of the SSH keys that exist.
func (f *Fake) KeyNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, k := range f.keys {
		out = append(out, k.Name)
	}
	return out
}

// Volumes is how many volumes exist.
func (f *Fake) Volumes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.vols)
}

// Counts are the servers and SSH keys that exist.
func (f *Fake) Counts() (servers, keys int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.servers), len(f.keys)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	f.mu.Lock()
	f.requests = append(f.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body), Authorized: r.Header.Get("Authorization") == "Bearer "+f.Token})
	authorized := r.Header.Get("Authorization") == "Bearer "+f.Token
	f.mu.Unlock()
	w.Header().Set("RateLimit-Limit", "3600")
	w.Header().Set("RateLimit-Remaining", "3599")
	w.Header().Set("RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
	if !authorized {
		writeError(w, http.StatusUnauthorized, "unauthorized", "unable to authenticate")
		return
	}
	if ft, ok := f.fault(r, body); ok && !ft.After {
		writeFault(w, ft)
		return
	} else if ok {
		f.route(httptest.NewRecorder(), r, body)
		writeFault(w, ft)
		return
	}
	f.route(w, r, body)
}

// fault takes the first fault matching the request, if any.
func (f *Fake) fault(r *http.Request, body []byte) (Fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ft := range f.faults {
		if (ft.Method != "" && ft.Method != r.Method) || !strings.HasPrefix(r.URL.Path, ft.PathPrefix) {
			continue
		}
		if ft.Location != "" {
			var req schema.ServerCreateRequest
			if json.Unmarshal(body, &req) != nil || req.Location != ft.Location {
				continue
			}
		}
		if ft.Times > 0 {
			if ft.Times--; ft.Times == 0 {
				f.faults = append(f.faults[:i], f.faults[i+1:]...)
			}
		}
		return *ft, true
	}
	return Fault{}, false
}

// writeFault answers with a fault's error.
func writeFault(w http.ResponseWriter, ft Fault) {
	if ft.ResetIn > 0 {
		w.Header().Set("RateLimit-Remaining", "0")
		w.Header().Set("RateLimit-Reset", strconv.FormatInt(time.Now().Add(ft.ResetIn).Unix(), 10))
	}
	writeError(w, ft.Status, ft.Code, "injected fault: "+ft.Code)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, schema.ErrorResponse{Error: schema.Error{Code: code, Message: msg, DetailsRaw: json.RawMessage("null")}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// page wraps a list in the pagination meta hcloud-go's iterators read.
func page(key string, items any, n int) map[string]any {
	return map[string]any{key: items, "meta": schema.Meta{Pagination: &schema.MetaPagination{Page: 1, PerPage: 50, LastPage: 1, TotalEntries: n}}}
}

func notFound(w http.ResponseWriter, what string) {
	writeError(w, http.StatusNotFound, "not_found", what+" not found")
}

func (f *Fake) id() int64 { f.nextID++; return f.nextID }

func (f *Fake) action(command string, resource int64, kind string) schema.Action {
	now := time.Now()
	a := &schema.Action{ID: f.id(), Status: "success", Command: command, Progress: 100, Started: now, Finished: &now,
		Resources: []schema.ActionResourceReference{{ID: resource, Type: kind}}}
	f.actions[a.ID] = a
	return *a
}

// idFrom is the numeric id after prefix in path ("/servers/12" → 12).
func idFrom(path, prefix string) (int64, bool) {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(strings.Trim(rest, "/"), 10, 64)
	return id, err == nil
}

// matches applies label_selector (k=v, k, !k; comma-joined) and name.
func matches(q map[string][]string, name string, labels map[string]string) bool {
	if n := first(q["name"]); n != "" && n != name {
		return false
	}
	for _, term := range strings.Split(first(q["label_selector"]), ",") {
		term = strings.TrimSpace(term)
		switch {
		case term == "":
		case strings.HasPrefix(term, "!"):
			if _, ok := labels[term[1:]]; ok {
				return false
			}
		case strings.Contains(term, "="):
			k, v, _ := strings.Cut(term, "=")
			if labels[k] != v {
				return false
			}
		default:
			if _, ok := labels[term]; !ok {
				return false
			}
		}
	}
	return true
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// filter is the items keep accepts, in order.
func filter[T any](items []T, keep func(T) bool) []T {
	var out []T
	for _, it := range items {
		if keep(it) {
			out = append(out, it)
		}
	}
	return out
}

func (f *Fake) route(w http.ResponseWriter, r *http.Request, body []byte) {
	p, q := r.URL.Path, r.URL.Query()
	switch {
	case r.Method == http.MethodGet && p == "/server_types":
		out := filter(ServerTypes, func(t schema.ServerType) bool { return matches(q, t.Name, nil) })
		writeJSON(w, 200, page("server_types", out, len(out)))
	case r.Method == http.MethodGet && p == "/locations":
		out := filter(Locations, func(l schema.Location) bool { return matches(q, l.Name, nil) })
		writeJSON(w, 200, page("locations", out, len(out)))
	case r.Method == http.MethodGet && p == "/images":
		f.listImages(w, q)
	case r.Method == http.MethodDelete && strings.HasPrefix(p, "/images/"):
		f.deleteImage(w, p)
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/servers/") && strings.HasSuffix(p, "/actions/create_image"):
		f.createImage(w, p, body)
	case r.Method == http.MethodGet && p == "/actions":
		f.listActions(w, q)
	case strings.HasPrefix(p, "/actions/"):
		f.getAction(w, p)
	case strings.HasPrefix(p, "/ssh_keys"):
		f.sshKeys(w, r, p, q, body)
	case strings.HasPrefix(p, "/volumes"):
		f.volumes(w, r, p, q, body)
	case strings.HasPrefix(p, "/servers"):
		f.serversRoute(w, r, p, q, body)
	default:
		notFound(w, r.Method+" "+p)
	}
}

func (f *Fake) listActions(w http.ResponseWriter, q map[string][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []schema.Action
	for _, s := range q["id"] {
		id, _ := strconv.ParseInt(s, 10, 64)
		if a, ok := f.actions[id]; ok {
			out = append(out, *a)
		}
	}
	writeJSON(w, 200, page("actions", out, len(out)))
}

func (f *Fake) getAction(w http.ResponseWriter, p string) {
	id, _ := idFrom(p, "/actions/")
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.actions[id]
	if !ok {
		notFound(w, "action")
		return
	}
	writeJSON(w, 200, schema.ActionGetResponse{Action: *a})
}

func (f *Fake) sshKeys(w http.ResponseWriter, r *http.Request, p string, q map[string][]string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && p == "/ssh_keys":
		var out []schema.SSHKey
		for _, k := range f.keys {
			if matches(q, k.Name, k.Labels) && (first(q["fingerprint"]) == "" || first(q["fingerprint"]) == k.Fingerprint) {
				out = append(out, *k)
			}
		}
		writeJSON(w, 200, page("ssh_keys", out, len(out)))
	case r.Method == http.MethodPost && p == "/ssh_keys":
		var req schema.SSHKeyCreateRequest
		if err := json.Unmarshal(body, &req); err != nil || req.Name == "" || req.PublicKey == "" {
			writeError(w, 400, "invalid_input", "name and public_key are required")
			return
		}
		if err := validLabels(deref(req.Labels)); err != nil {
			writeError(w, 400, "invalid_input", err.Error())
			return
		}
		for _, k := range f.keys {
			if k.Name == req.Name {
				writeError(w, 409, "uniqueness_error", "SSH key with the same name already exists")
				return
			}
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
		if err != nil {
			writeError(w, 400, "invalid_input", "invalid public key")
			return
		}
		for _, k := range f.keys {
			if k.Fingerprint == ssh.FingerprintLegacyMD5(pub) {
				writeError(w, 409, "uniqueness_error", "SSH key with the same fingerprint already exists")
				return
			}
		}
		k := &schema.SSHKey{ID: f.id(), Name: req.Name, PublicKey: req.PublicKey, Fingerprint: ssh.FingerprintLegacyMD5(pub), Created: time.Now()}
		if req.Labels != nil {
			k.Labels = *req.Labels
		}
		f.keys[k.ID] = k
		writeJSON(w, 201, schema.SSHKeyCreateResponse{SSHKey: *k})
	case r.Method == http.MethodDelete:
		id, _ := idFrom(p, "/ssh_keys/")
		if _, ok := f.keys[id]; !ok {
			notFound(w, "ssh_key")
			return
		}
		delete(f.keys, id)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet:
		id, _ := idFrom(p, "/ssh_keys/")
		k, ok := f.keys[id]
		if !ok {
			notFound(w, "ssh_key")
			return
		}
		writeJSON(w, 200, schema.SSHKeyGetResponse{SSHKey: *k})
	default:
		notFound(w, r.Method+" "+p)
	}
}

func deref(m *map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	return *m
}

// HourlyPrice is a server type's net list price per hour (EUR; 0: unknown).
func HourlyPrice(serverType string) float64 { return listPrices[serverType][0] }
