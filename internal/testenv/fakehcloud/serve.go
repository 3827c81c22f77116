package fakehcloud

import (
	"context"
	"fmt"
	"io"
	"net"
)

// Serve runs the fake in the foreground on listen until ctx ends, then
// removes every runner host it started. The API is under /v1, as Hetzner's:
// point HCLOUD_ENDPOINT at http://LISTEN/v1 and HCLOUD_TOKEN at token.
func Serve(ctx context.Context, listen, token string, hosts Hosts, out io.Writer) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	f := NewOn(ln, token, hosts)
	fmt.Fprintf(out, "fake Hetzner Cloud API on %s\n  export HCLOUD_ENDPOINT=%s HCLOUD_TOKEN=%s\n", ln.Addr(), f.Endpoint(), token)
	<-ctx.Done()
	s, k := f.Counts()
	f.Close()
	fmt.Fprintf(out, "fake Hetzner Cloud API stopped; removed %d servers' hosts and %d volumes' images (%d SSH keys were left)\n", s, f.closedVolumes, k)
	return nil
}
