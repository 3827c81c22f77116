package fakehcloud

import (
	"context"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
)

// hcloud-go itself finds the fake faithful: types, locations, images, keys,
// servers with labels, actions, errors with codes.
func TestFakeSpeaksHcloudGo(t *testing.T) {
	f := New("t0ken", nil)
	defer f.Close()
	ctx := context.Background()
	c := hcloud.NewClient(hcloud.WithToken("t0ken"), hcloud.WithEndpoint(f.Endpoint()), hcloud.WithPollOpts(hcloud.PollOpts{BackoffFunc: hcloud.ConstantBackoff(10 * time.Millisecond)}))
	st, _, err := c.ServerType.GetByName(ctx, "cax21")
	if err != nil || st == nil || st.Cores != 4 || st.Architecture != hcloud.ArchitectureARM {
		t.Fatalf("server type: %+v %v", st, err)
	}
	im, _, err := c.Image.GetByNameAndArchitecture(ctx, "debian-12", hcloud.ArchitectureARM)
	if err != nil || im == nil {
		t.Fatalf("image: %v %v", im, err)
	}
	key, _, err := c.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: "k1", PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7JD1o6qRHuv+4r/6nNq3TLb6cY7Wq2T4YVoTtP4xjX test", Labels: map[string]string{"lian-build/lease": "l1"}})
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := c.Server.Create(ctx, hcloud.ServerCreateOpts{Name: "s1", ServerType: st, Image: im, SSHKeys: []*hcloud.SSHKey{key},
		Location: &hcloud.Location{Name: "nbg1"}, Labels: map[string]string{"lian-build/lease": "l1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Action.WaitFor(ctx, append(res.NextActions, res.Action)...); err != nil {
		t.Fatal(err)
	}
	servers, err := c.Server.AllWithOpts(ctx, hcloud.ServerListOpts{ListOpts: hcloud.ListOpts{LabelSelector: "lian-build/lease=l1"}})
	if err != nil || len(servers) != 1 || servers[0].Location.Name != "nbg1" || servers[0].PublicNet.IPv4.IP == nil {
		t.Fatalf("list: %+v %v", servers, err)
	}
	f.Inject(Fault{Method: "POST", PathPrefix: "/servers", Location: "fsn1", Times: 1, Status: 503, Code: "resource_unavailable"})
	_, _, err = c.Server.Create(ctx, hcloud.ServerCreateOpts{Name: "s2", ServerType: st, Image: im, Location: &hcloud.Location{Name: "fsn1"}})
	if !hcloud.IsError(err, hcloud.ErrorCodeResourceUnavailable) {
		t.Fatalf("injected fault: %v", err)
	}
	if _, _, err := c.Server.DeleteWithResult(ctx, servers[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SSHKey.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if s, k := f.Counts(); s != 0 || k != 0 {
		t.Fatalf("left %d servers, %d keys", s, k)
	}
	bad := hcloud.NewClient(hcloud.WithToken("wrong"), hcloud.WithEndpoint(f.Endpoint()))
	if _, _, err := bad.ServerType.GetByName(ctx, "cax11"); !hcloud.IsError(err, hcloud.ErrorCodeUnauthorized) {
		t.Fatalf("a wrong token was accepted: %v", err)
	}
}
