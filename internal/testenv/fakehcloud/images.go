package fakehcloud

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// images lists the stock images and the snapshots made here.
func (f *Fake) listImages(w http.ResponseWriter, q map[string][]string) {
	f.mu.Lock()
	all := append(slices.Clone(Images), f.snapshots...)
	f.mu.Unlock()
	out := filter(all, func(im schema.Image) bool {
		name := ""
		if im.Name != nil {
			name = *im.Name
		}
		return matches(q, name, im.Labels) && (first(q["architecture"]) == "" || first(q["architecture"]) == im.Architecture) &&
			(len(q["type"]) == 0 || slices.Contains(q["type"], im.Type))
	})
	writeJSON(w, 200, page("images", out, len(out)))
}

// createImage is POST /servers/{id}/actions/create_image: a snapshot of
// the server (the fake records it; a server created from it boots the
// same runner host).
func (f *Fake) createImage(w http.ResponseWriter, p string, body []byte) {
	id, _ := idFrom(strings.TrimSuffix(p, "/actions/create_image"), "/servers/")
	var req schema.ServerActionCreateImageRequest
	if err := json.Unmarshal(body, &req); err != nil || (req.Type != nil && *req.Type != "snapshot" && *req.Type != "backup") {
		writeError(w, 400, "invalid_input", "invalid create_image request")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.servers[id]
	if !ok {
		notFound(w, "server")
		return
	}
	labels := map[string]string{}
	if req.Labels != nil {
		labels = *req.Labels
	}
	im := schema.Image{ID: f.id(), Type: "snapshot", Status: "available", Description: text(req.Description), OSFlavor: "debian",
		Architecture: s.ServerType.Architecture, Labels: labels, Created: ptr(time.Now()), CreatedFrom: &schema.ImageCreatedFrom{ID: s.ID, Name: s.Name},
		DiskSize: float32(s.ServerType.Disk), ImageSize: ptr(float32(1.2))}
	f.snapshots = append(f.snapshots, im)
	a := f.action("create_image", id, "server")
	writeJSON(w, 201, schema.ServerActionCreateImageResponse{Action: a, Image: im})
}

// deleteImage is DELETE /images/{id} (snapshots only: the stock images
// are Hetzner's).
func (f *Fake) deleteImage(w http.ResponseWriter, p string) {
	id, _ := idFrom(p, "/images/")
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.snapshots, func(im schema.Image) bool { return im.ID == id })
	if i < 0 {
		notFound(w, "image")
		return
	}
	f.snapshots = slices.Delete(f.snapshots, i, i+1)
	w.WriteHeader(http.StatusNoContent)
}

// Snapshots are the snapshots made through the fake.
func (f *Fake) Snapshots() []schema.Image {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.snapshots)
}

func text(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
