package fakehcloud

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// VolumeSpec is a volume attached to a server being created: the machine
// mounts the volume's image at Mount, as Hetzner's automount does.
type VolumeSpec struct {
	ID    int64
	Image string // the volume's backing file (a formatted filesystem image)
	Mount string // /mnt/HC_Volume_<id>
}

// volumeDir is where the fake keeps its volumes' images.
func (f *Fake) volumeDir() (string, error) {
	if f.VolumeDir == "" {
		f.VolumeDir = filepath.Join(os.TempDir(), fmt.Sprintf("fakehcloud-volumes-%d", os.Getpid()))
	}
	return f.VolumeDir, os.MkdirAll(f.VolumeDir, 0o700)
}

// VolumeImage is a volume's backing file.
func (f *Fake) VolumeImage(id int64) string {
	dir, _ := f.volumeDir()
	return filepath.Join(dir, fmt.Sprintf("volume-%d.img", id))
}

func (f *Fake) volumes(w http.ResponseWriter, r *http.Request, p string, q map[string][]string, body []byte) {
	switch {
	case r.Method == http.MethodGet && p == "/volumes":
		f.mu.Lock()
		var out []schema.Volume
		for _, v := range f.vols {
			if matches(q, v.Name, v.Labels) {
				out = append(out, *v)
			}
		}
		f.mu.Unlock()
		writeJSON(w, 200, page("volumes", out, len(out)))
	case r.Method == http.MethodPost && p == "/volumes":
		f.createVolume(w, body)
	case r.Method == http.MethodGet:
		id, _ := idFrom(p, "/volumes/")
		f.mu.Lock()
		v, ok := f.vols[id]
		f.mu.Unlock()
		if !ok {
			notFound(w, "volume")
			return
		}
		writeJSON(w, 200, schema.VolumeGetResponse{Volume: *v})
	case r.Method == http.MethodDelete:
		f.deleteVolume(w, p)
	default:
		notFound(w, r.Method+" "+p)
	}
}

// createVolume makes a sparse image of the size, formatted as asked (xfs
// or ext4), in a location; a server given attaches it at once.
func (f *Fake) createVolume(w http.ResponseWriter, body []byte) {
	var req schema.VolumeCreateRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Name == "" || req.Size < 10 {
		writeError(w, 400, "invalid_input", "name and a size of at least 10 GB are required")
		return
	}
	if err := validLabels(deref(req.Labels)); err != nil {
		writeError(w, 400, "invalid_input", err.Error())
		return
	}
	if req.Server != nil {
		writeError(w, 400, "invalid_input", "this fake attaches volumes at server creation only")
		return
	}
	loc := Locations[0]
	if req.Location != nil {
		var ok bool
		if loc, ok = lookupLocation(idOrName(*req.Location)); !ok {
			writeError(w, 400, "invalid_input", "unknown location")
			return
		}
	}
	format := "ext4"
	if req.Format != nil {
		format = *req.Format
	}
	f.mu.Lock()
	id := f.id()
	f.mu.Unlock()
	if err := f.makeImage(id, req.Size, format); err != nil {
		writeError(w, 500, "service_error", "volume image: "+err.Error())
		return
	}
	v := &schema.Volume{ID: id, Name: req.Name, Status: "available", Location: loc, Size: req.Size, Format: &format,
		LinuxDevice: fmt.Sprintf("/dev/disk/by-id/scsi-0HC_Volume_%d", id), Created: time.Now(), Labels: map[string]string{}}
	if req.Labels != nil {
		v.Labels = *req.Labels
	}
	f.mu.Lock()
	f.vols[id] = v
	a := f.action("create_volume", id, "volume")
	f.mu.Unlock()
	writeJSON(w, 201, schema.VolumeCreateResponse{Volume: *v, Action: &a})
}

// makeImage is a sparse file of size GB, formatted. A volume of the real
// size costs nothing until written.
func (f *Fake) makeImage(id int64, sizeGB int, format string) error {
	if format != "xfs" && format != "ext4" {
		return fmt.Errorf("format %q: want xfs or ext4", format)
	}
	img := f.VolumeImage(id)
	fh, err := os.Create(img)
	if err != nil {
		return err
	}
	err = fh.Truncate(int64(sizeGB) << 30)
	fh.Close()
	if err != nil {
		return err
	}
	if out, err := exec.Command("mkfs."+format, "-q", img).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.%s: %v: %s", format, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (f *Fake) deleteVolume(w http.ResponseWriter, p string) {
	id, _ := idFrom(p, "/volumes/")
	f.mu.Lock()
	v, ok := f.vols[id]
	if ok && v.Server != nil {
		f.mu.Unlock()
		writeError(w, 423, "locked", "volume is attached to a server")
		return
	}
	delete(f.vols, id)
	f.mu.Unlock()
	if !ok {
		notFound(w, "volume")
		return
	}
	_ = os.Remove(f.VolumeImage(id))
	w.WriteHeader(http.StatusNoContent)
}

// attach marks the request's volumes attached to server id and returns what
// the machine mounts; a volume attached elsewhere or in another location is
// refused, as the API does.
func (f *Fake) attach(req schema.ServerCreateRequest, id int64, loc string) ([]VolumeSpec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []VolumeSpec
	for _, vid := range req.Volumes {
		v, ok := f.vols[vid]
		switch {
		case !ok:
			return nil, fmt.Errorf("volume %d not found", vid)
		case v.Server != nil:
			return nil, fmt.Errorf("volume %d is already attached to server %d", vid, *v.Server)
		case v.Location.Name != loc:
			return nil, fmt.Errorf("volume %d is in %s, the server in %s", vid, v.Location.Name, loc)
		}
	}
	for _, vid := range req.Volumes {
		sid := id
		f.vols[vid].Server = &sid
		out = append(out, VolumeSpec{ID: vid, Image: f.VolumeImage(vid), Mount: fmt.Sprintf("/mnt/HC_Volume_%d", vid)})
	}
	return out, nil
}

// detach frees the volumes attached to a deleted server.
func (f *Fake) detach(serverID int64) {
	for _, v := range f.vols {
		if v.Server != nil && *v.Server == serverID {
			v.Server = nil
		}
	}
}
