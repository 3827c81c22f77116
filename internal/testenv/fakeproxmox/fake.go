// Package fakeproxmox is a fake Proxmox VE API for tests: the calls a
// runner makes (next id, clone, config, start, the guest agent's
// interfaces, stop, delete, task status, the cluster's VM list) with the
// real API's shapes — {"data": …} envelopes, form-encoded requests, UPIDs
// for asynchronous tasks, errors in the status line — token auth, and the
// faults the real service has: a clone task that fails, a guest agent that
// never answers. Starting a VM asks a Hosts (the Hetzner fake's runner
// hosts) for a machine; stopping it stops the machine.
package fakeproxmox

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

// Node is the fake's only node.
const Node = "pve"

// TemplateID is the template VM every clone starts from.
const TemplateID = 9000

// Faults the fake can inject.
type Faults struct {
	CloneFails  bool // the clone task stops with an error
	AgentSilent bool // the guest agent never answers
}

// VM is one VM of the fake.
type VM struct {
	ID       int
	Name     string
	Status   string // stopped, running
	Template bool
	Config   map[string]string
	IP       string
	// Disk is what the VM boots (fakehcloud.HostSpec.Disk): its own disk
	// kept at a stop, or its template's; own are the files it owns.
	Disk string
	own  []string
}

type task struct {
	upid, kind, exit string
	done             time.Time
}

// Fake is the API.
type Fake struct {
	Server *httptest.Server
	Token  string // USER@REALM!TOKENID=SECRET
	hosts  fakehcloud.Hosts

	mu       sync.Mutex
	faults   Faults
	snippets map[string]string // volume id (local:snippets/NAME) → content
	vms      map[int]*VM
	tasks    map[string]*task
	requests []string
	seq      int
}

// New starts the fake on a loopback port.
func New(token string, hosts fakehcloud.Hosts) *Fake {
	f := &Fake{Token: token, hosts: hosts, vms: map[int]*VM{}, tasks: map[string]*task{}, snippets: map[string]string{}}
	f.vms[TemplateID] = &VM{ID: TemplateID, Name: "debian-12-runner", Status: "stopped", Template: true,
		Config: map[string]string{"name": "debian-12-runner", "template": "1", "cores": "1", "memory": "1024", "agent": "1"}}
	// HTTPS with a self-signed certificate, as a Proxmox node serves it.
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	return f
}

// Endpoint is the API's URL.
func (f *Fake) Endpoint() string { return f.Server.URL + "/api2/json" }

// CAFile writes the fake's self-signed certificate (PEM) into dir and
// returns its path, for --proxmox-ca-file.
func (f *Fake) CAFile(dir string) (string, error) {
	p := filepath.Join(dir, "proxmox-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Server.Certificate().Raw})
	return p, os.WriteFile(p, b, 0o644)
}

// Close stops every VM's host and the server.
func (f *Fake) Close() {
	f.mu.Lock()
	var running []int
	for id, v := range f.vms {
		if v.Status == "running" {
			running = append(running, id)
		}
	}
	f.mu.Unlock()
	for _, id := range running {
		_ = f.hosts.Stop(context.Background(), int64(id))
	}
	f.Server.Close()
}

// SetTemplate sets a key of the stock template's config (clones copy it),
// as an operator's `qm set 9000 --KEY VALUE` would.
func (f *Fake) SetTemplate(key, value string) { f.SetConfig(TemplateID, key, value) }

// SetConfig sets a key of VM id's config, as `qm set ID --KEY VALUE` would.
func (f *Fake) SetConfig(id int, key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vms[id].Config[key] = value
}

// AddSnippet stores a snippet (a cicustom file) under its volume id.
func (f *Fake) AddSnippet(volid, content string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snippets[volid] = content
}

// Inject sets the faults.
func (f *Fake) Inject(fl Faults) {
	f.mu.Lock()
	f.faults = fl
	f.mu.Unlock()
}

// VMs is how many VMs exist that are not templates.
func (f *Fake) VMs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.vms {
		if !v.Template {
			n++
		}
	}
	return n
}

// VM is a copy of VM id (nil: none).
func (f *Fake) VM(id int) *VM {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.vms[id]
	if v == nil {
		return nil
	}
	c := *v
	c.Config = maps.Clone(v.Config)
	return &c
}

// Requests are "METHOD PATH" of every request, in order.
func (f *Fake) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "PVEAPIToken="+f.Token {
		fail(w, http.StatusUnauthorized, "authentication failure")
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(w, http.StatusBadRequest, "Parameter verification failed.")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api2/json")
	if !ok {
		fail(w, http.StatusNotImplemented, "Method '"+r.URL.Path+"' not implemented")
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && path == "/cluster/nextid":
		f.nextID(w)
	case r.Method == http.MethodGet && path == "/cluster/resources":
		f.resources(w)
	case len(parts) == 5 && parts[0] == "nodes" && parts[2] == "tasks" && parts[4] == "status":
		f.taskStatus(w, parts[3])
	case len(parts) >= 4 && parts[0] == "nodes" && parts[1] == Node && parts[2] == "qemu":
		id, err := strconv.Atoi(parts[3])
		if err != nil {
			fail(w, http.StatusBadRequest, "Parameter verification failed.")
			return
		}
		f.qemu(w, r, id, strings.Join(parts[4:], "/"))
	default:
		fail(w, http.StatusNotImplemented, "Method '"+r.Method+" "+path+"' not implemented")
	}
}

// fail answers as the API does: the reason in the status line (written
// on the raw connection: net/http's writer sends only standard texts) and
// a body of {"data":null}.
func fail(w http.ResponseWriter, status int, msg string) {
	body := `{"data":null}`
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, msg, status)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, strings.ReplaceAll(msg, "\n", " "), len(body), body)
	_ = buf.Flush()
}

func data(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": v})
}

func (f *Fake) nextID(w http.ResponseWriter) {
	f.mu.Lock()
	id := 100
	for f.vms[id] != nil {
		id++
	}
	f.mu.Unlock()
	data(w, strconv.Itoa(id))
}

func (f *Fake) resources(w http.ResponseWriter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []map[string]any{}
	for _, v := range f.vms {
		tmpl := 0
		if v.Template {
			tmpl = 1
		}
		out = append(out, map[string]any{"id": fmt.Sprintf("qemu/%d", v.ID), "type": "qemu", "vmid": v.ID, "name": v.Name,
			"node": Node, "status": v.Status, "tags": v.Config["tags"], "template": tmpl, "maxmem": 1 << 30})
	}
	data(w, out)
}

// newTask records a task that stops after a moment with exit ("OK" or an error).
func (f *Fake) newTask(kind string, id int, exit string) string {
	f.seq++
	upid := fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%d:root@pam!lian:", Node, 4000+f.seq, f.seq*7919, time.Now().Unix(), kind, id)
	f.tasks[upid] = &task{upid: upid, kind: kind, exit: exit, done: time.Now().Add(150 * time.Millisecond)}
	return upid
}

func (f *Fake) taskStatus(w http.ResponseWriter, escaped string) {
	upid, _ := url.PathUnescape(escaped)
	f.mu.Lock()
	t := f.tasks[upid]
	f.mu.Unlock()
	if t == nil {
		fail(w, http.StatusInternalServerError, "no such task")
		return
	}
	st := map[string]any{"upid": t.upid, "type": t.kind, "node": Node, "status": "running"}
	if time.Now().After(t.done) {
		st["status"], st["exitstatus"] = "stopped", t.exit
	}
	data(w, st)
}

// tierOf is the tier whose memory a VM's config asks for.
func tierOf(memoryMB string) string {
	mb, _ := strconv.Atoi(memoryMB)
	for _, t := range sizing.HCloud {
		if t.MemoryGB*1024 == mb {
			return t.Name
		}
	}
	return sizing.HCloud[0].Name
}
