package fakehcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

func (f *Fake) serversRoute(w http.ResponseWriter, r *http.Request, p string, q map[string][]string, body []byte) {
	switch {
	case r.Method == http.MethodGet && p == "/servers":
		f.mu.Lock()
		var out []schema.Server
		for _, s := range f.servers {
			if matches(q, s.Name, s.Labels) {
				out = append(out, *s)
			}
		}
		f.mu.Unlock()
		writeJSON(w, 200, page("servers", out, len(out)))
	case r.Method == http.MethodPost && p == "/servers":
		f.createServer(w, r.Context(), body)
	case r.Method == http.MethodGet:
		id, _ := idFrom(p, "/servers/")
		f.mu.Lock()
		s, ok := f.servers[id]
		var cp schema.Server
		if ok {
			cp = *s
		}
		f.mu.Unlock()
		if !ok {
			notFound(w, "server")
			return
		}
		writeJSON(w, 200, schema.ServerGetResponse{Server: cp})
	case r.Method == http.MethodDelete:
		f.deleteServer(w, r.Context(), p)
	default:
		notFound(w, r.Method+" "+p)
	}
}

func lookupType(name string) (schema.ServerType, bool) {
	for _, t := range ServerTypes {
		if t.Name == name || strconv.FormatInt(t.ID, 10) == name {
			return t, true
		}
	}
	return schema.ServerType{}, false
}

func lookupLocation(name string) (schema.Location, bool) {
	for _, l := range Locations {
		if l.Name == name {
			return l, true
		}
	}
	return schema.Location{}, false
}

func (f *Fake) lookupImage(ref string, arch string) (schema.Image, bool) {
	f.mu.Lock()
	all := append(slices.Clone(Images), f.snapshots...)
	f.mu.Unlock()
	for _, im := range all {
		if strconv.FormatInt(im.ID, 10) == ref || (im.Name != nil && *im.Name == ref && im.Architecture == arch) {
			return im, true
		}
	}
	return schema.Image{}, false
}

func idOrName(v schema.IDOrName) string {
	if v.ID != 0 {
		return strconv.FormatInt(v.ID, 10)
	}
	return v.Name
}

func (f *Fake) createServer(w http.ResponseWriter, ctx context.Context, body []byte) {
	var req schema.ServerCreateRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Name == "" {
		writeError(w, 400, "invalid_input", "invalid server create request")
		return
	}
	if err := validLabels(deref(req.Labels)); err != nil {
		writeError(w, 400, "invalid_input", err.Error())
		return
	}
	if len(req.Name) > 63 {
		writeError(w, 400, "invalid_input", "name: longer than 63 characters")
		return
	}
	st, ok := lookupType(idOrName(req.ServerType))
	if !ok {
		writeError(w, 400, "invalid_input", "unknown server_type")
		return
	}
	im, ok := f.lookupImage(idOrName(req.Image), st.Architecture)
	if !ok {
		writeError(w, 400, "invalid_input", "unknown image for architecture "+st.Architecture)
		return
	}
	loc, ok := lookupLocation(req.Location)
	if req.Location == "" {
		loc, ok = Locations[0], true
	}
	if !ok {
		writeError(w, 400, "invalid_input", "unknown location")
		return
	}
	f.mu.Lock()
	var keys []string
	for _, id := range req.SSHKeys {
		k, ok := f.keys[id]
		if !ok {
			f.mu.Unlock()
			writeError(w, 400, "invalid_input", fmt.Sprintf("ssh_key %d not found", id))
			return
		}
		keys = append(keys, k.PublicKey)
	}
	id := f.id()
	f.mu.Unlock()
	vols, err := f.attach(req, id, loc.Name)
	if err != nil {
		writeError(w, 409, "conflict", err.Error())
		return
	}
	labels := map[string]string{}
	if req.Labels != nil {
		labels = *req.Labels
	}
	ip := fmt.Sprintf("192.0.2.%d", id%250+1) // TEST-NET-1: unroutable without a host
	if f.hosts != nil {
		var err error
		ip, err = f.hosts.Start(ctx, HostSpec{ServerID: id, Name: req.Name, ServerType: st.Name, Cores: st.Cores, MemoryGB: st.Memory, UserData: req.UserData, SSHKeys: keys, Labels: labels, Volumes: vols})
		if err != nil {
			f.mu.Lock()
			f.detach(id)
			f.mu.Unlock()
			writeError(w, 503, "resource_unavailable", "runner host: "+err.Error())
			return
		}
	}
	s := &schema.Server{ID: id, Name: req.Name, Status: "running", Created: time.Now(), ServerType: st, Location: loc, Image: &im, Labels: labels,
		PublicNet: schema.ServerPublicNet{IPv4: schema.ServerPublicNetIPv4{ID: id, IP: ip}}, Volumes: req.Volumes}
	f.mu.Lock()
	f.servers[id] = s
	f.Ledger.Open(id, st.Name, s.Created)
	a := f.action("create_server", id, "server")
	next := f.action("start_server", id, "server")
	resp := schema.ServerCreateResponse{Server: *s, Action: a, NextActions: []schema.Action{next}}
	f.mu.Unlock()
	writeJSON(w, 201, resp)
}

func (f *Fake) deleteServer(w http.ResponseWriter, ctx context.Context, p string) {
	id, _ := idFrom(p, "/servers/")
	f.mu.Lock()
	_, ok := f.servers[id]
	f.mu.Unlock()
	if !ok {
		notFound(w, "server")
		return
	}
	if f.hosts != nil {
		if err := f.hosts.Stop(ctx, id); err != nil {
			writeError(w, 500, "service_error", "runner host: "+err.Error())
			return
		}
	}
	f.mu.Lock()
	delete(f.servers, id)
	f.detach(id)
	f.Ledger.Close(id, time.Now())
	a := f.action("delete_server", id, "server")
	f.mu.Unlock()
	writeJSON(w, 200, schema.ServerDeleteResponse{Action: a})
}
