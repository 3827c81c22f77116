package fakeproxmox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

func (f *Fake) qemu(w http.ResponseWriter, r *http.Request, id int, rest string) {
	f.mu.Lock()
	v := f.vms[id]
	f.mu.Unlock()
	if v == nil {
		fail(w, http.StatusInternalServerError, fmt.Sprintf("Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist", Node, id))
		return
	}
	switch {
	case r.Method == http.MethodPost && rest == "clone":
		f.clone(w, r, v)
	case r.Method == http.MethodGet && rest == "config":
		f.mu.Lock()
		cfg := map[string]string{}
		for k, val := range v.Config {
			cfg[k] = val
		}
		f.mu.Unlock()
		data(w, cfg)
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && rest == "config":
		f.setConfig(v, r.PostForm)
		data(w, nil)
	case r.Method == http.MethodPost && rest == "template":
		f.template(w, v)
	case r.Method == http.MethodPost && rest == "status/start":
		f.start(w, r.Context(), v)
	case r.Method == http.MethodPost && rest == "status/stop":
		f.stop(w, r.Context(), v)
	case r.Method == http.MethodDelete && rest == "":
		f.destroy(w, v)
	case r.Method == http.MethodGet && rest == "agent/network-get-interfaces":
		f.interfaces(w, r.Context(), v)
	default:
		fail(w, http.StatusNotImplemented, "Method '"+r.Method+" "+rest+"' not implemented")
	}
}

func (f *Fake) clone(w http.ResponseWriter, r *http.Request, tmpl *VM) {
	newid, err := strconv.Atoi(r.PostForm.Get("newid"))
	if err != nil || r.PostForm.Get("name") == "" {
		fail(w, http.StatusBadRequest, "Parameter verification failed.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.vms[newid] != nil {
		fail(w, http.StatusInternalServerError, fmt.Sprintf("unable to create VM %d: config file already exists", newid))
		return
	}
	if f.faults.CloneFails {
		data(w, f.newTask("qmclone", tmpl.ID, "clone failed: storage 'local-lvm' does not have enough free space"))
		return
	}
	cfg := map[string]string{}
	for k, v := range tmpl.Config {
		if k != "template" {
			cfg[k] = v
		}
	}
	cfg["name"], cfg["description"] = r.PostForm.Get("name"), r.PostForm.Get("description")
	f.vms[newid] = &VM{ID: newid, Name: cfg["name"], Status: "stopped", Config: cfg, Disk: tmpl.Disk}
	data(w, f.newTask("qmclone", tmpl.ID, "OK"))
}

// start boots the VM: a runner host with the config's memory and keys.
func (f *Fake) start(w http.ResponseWriter, ctx context.Context, v *VM) {
	f.mu.Lock()
	if v.Status == "running" {
		upid := f.newTask("qmstart", v.ID, "OK")
		f.mu.Unlock()
		data(w, upid)
		return
	}
	spec := f.hostSpec(v)
	f.mu.Unlock()
	ip, err := f.hosts.Start(ctx, spec)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		data(w, f.newTask("qmstart", v.ID, "start failed: "+err.Error()))
		return
	}
	v.Status, v.IP = "running", ip
	data(w, f.newTask("qmstart", v.ID, "OK"))
}

func (f *Fake) stop(w http.ResponseWriter, ctx context.Context, v *VM) {
	f.mu.Lock()
	running := v.Status == "running"
	f.mu.Unlock()
	exit, disk := "OK", ""
	if running {
		var err error
		if h, ok := f.hosts.(fakehcloud.Halter); ok {
			disk, err = h.Halt(ctx, int64(v.ID))
		} else {
			err = f.hosts.Stop(ctx, int64(v.ID))
		}
		if err != nil {
			exit = "stop failed: " + err.Error()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if exit == "OK" {
		v.Status, v.IP = "stopped", ""
	}
	if disk != "" {
		v.Disk, v.own = disk, append(v.own, disk)
	}
	data(w, f.newTask("qmstop", v.ID, exit))
}

func (f *Fake) destroy(w http.ResponseWriter, v *VM) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case v.ID == TemplateID:
		fail(w, http.StatusInternalServerError, "refusing to destroy the stock template in this fake")
		return
	case v.Status == "running":
		fail(w, http.StatusInternalServerError, fmt.Sprintf("VM %d is running - destroy failed", v.ID))
		return
	}
	for _, o := range f.vms {
		if v.Template && o != v && v.Disk != "" && o.Disk == v.Disk {
			data(w, f.newTask("qmdestroy", v.ID, fmt.Sprintf("base volume of VM %d is used by linked clone %d", v.ID, o.ID)))
			return
		}
	}
	for _, d := range v.own {
		_ = os.Remove(d)
	}
	delete(f.vms, v.ID)
	data(w, f.newTask("qmdestroy", v.ID, "OK"))
}

// setConfig sets the form's keys, and deletes those `delete` lists.
func (f *Fake) setConfig(v *VM, form url.Values) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range form {
		if k != "delete" {
			v.Config[k] = form.Get(k)
		}
	}
	for _, k := range strings.Split(form.Get("delete"), ",") {
		delete(v.Config, strings.TrimSpace(k))
	}
	v.Name = v.Config["name"]
}

// template converts a stopped VM to a template (`qm template`).
func (f *Fake) template(w http.ResponseWriter, v *VM) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v.Status == "running" {
		fail(w, http.StatusInternalServerError, fmt.Sprintf("VM %d is running - unable to create template", v.ID))
		return
	}
	v.Template, v.Config["template"] = true, "1"
	data(w, f.newTask("qmtemplate", v.ID, "OK"))
}

// agentAddresses is a host whose VMs run a real guest agent.
type agentAddresses interface {
	Addresses(ctx context.Context, serverID int64) (map[string][]string, error)
}

func (f *Fake) interfaces(w http.ResponseWriter, ctx context.Context, v *VM) {
	f.mu.Lock()
	running, ip, silent := v.Status == "running", v.IP, f.faults.AgentSilent
	f.mu.Unlock()
	switch {
	case !running:
		fail(w, http.StatusInternalServerError, fmt.Sprintf("VM %d is not running", v.ID))
		return
	case silent:
		fail(w, http.StatusInternalServerError, "QEMU guest agent is not running")
		return
	}
	type addr struct {
		IP     string `json:"ip-address"`
		Type   string `json:"ip-address-type"`
		Prefix int    `json:"prefix"`
	}
	ifs := []map[string]any{
		{"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": []addr{{"127.0.0.1", "ipv4", 8}, {"::1", "ipv6", 128}}},
		{"name": "eth0", "hardware-address": fmt.Sprintf("bc:24:11:00:%02x:%02x", v.ID/256, v.ID%256), "ip-addresses": []addr{{ip, "ipv4", 30}}},
	}
	if a, ok := f.hosts.(agentAddresses); ok {
		// The VM's own agent answers, or Proxmox says it is not running.
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		got, err := a.Addresses(ctx, int64(v.ID))
		if err != nil {
			fail(w, http.StatusInternalServerError, "QEMU guest agent is not running")
			return
		}
		ifs = nil
		for name, ips := range got {
			var as []addr
			for _, a := range ips {
				as = append(as, addr{a, "ipv4", 0})
			}
			ifs = append(ifs, map[string]any{"name": name, "ip-addresses": as})
		}
	}
	data(w, map[string]any{"result": ifs})
}

// hostSpec is what a VM's start gives its host: the config's cores,
// memory and keys, and the cloud-init drive Proxmox generates from it
// (user-data from hostname, sshkeys and ciupgrade; vendor-data from a
// cicustom snippet).
func (f *Fake) hostSpec(v *VM) fakehcloud.HostSpec {
	keys, _ := url.QueryUnescape(v.Config["sshkeys"])
	keyList := strings.Split(strings.TrimSpace(keys), "\n")
	cores, _ := strconv.Atoi(v.Config["cores"])
	mb, _ := strconv.Atoi(v.Config["memory"])
	var ud strings.Builder
	fmt.Fprintf(&ud, "#cloud-config\nhostname: %s\nmanage_etc_hosts: true\nfqdn: %[1]s\nssh_authorized_keys:\n", v.Name)
	for _, k := range keyList {
		fmt.Fprintf(&ud, "  - %s\n", k)
	}
	ud.WriteString("chpasswd:\n  expire: False\nusers:\n  - default\n")
	if v.Config["ciupgrade"] != "0" {
		ud.WriteString("package_upgrade: true\n")
	}
	spec := fakehcloud.HostSpec{ServerID: int64(v.ID), Name: v.Name, ServerType: tierOf(v.Config["memory"]), Cores: cores, MemoryGB: float32(mb) / 1024,
		SSHKeys: keyList, UserData: ud.String(), Disk: v.Disk}
	for _, part := range strings.Split(v.Config["cicustom"], ",") {
		if vol, ok := strings.CutPrefix(part, "vendor="); ok {
			spec.VendorData = f.snippets[vol]
		}
	}
	return spec
}
