package docker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
)

// The runner's buildkitd is reached through the Engine API, as buildx's
// docker-container driver does: `buildctl dial-stdio` runs in the
// container by exec, and its stdin and stdout are the connection. No port
// is published, no socket is shared with the host, and it works wherever
// the Engine API does — a remote DOCKER_HOST (ssh://, tcp:// with TLS)
// included.

// execConn is an exec's attached stdin/stdout as a net.Conn. A non-TTY
// exec multiplexes stdout and stderr in frames of an 8-byte header (stream,
// 0, 0, 0, big-endian size) and the payload; reads take stdout's frames
// and keep stderr's for errors.
type execConn struct {
	hj     client.HijackedResponse
	r      *bufio.Reader
	left   int // bytes left in the current stdout frame
	mu     sync.Mutex
	stderr strings.Builder
}

func (c *execConn) Read(p []byte) (int, error) {
	for c.left == 0 {
		var h [8]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			return 0, c.explain(err)
		}
		n := int(binary.BigEndian.Uint32(h[4:]))
		if h[0] == 2 { // stderr
			b := make([]byte, n)
			if _, err := io.ReadFull(c.r, b); err != nil {
				return 0, c.explain(err)
			}
			c.mu.Lock()
			if c.stderr.Len() < 4096 {
				c.stderr.Write(b)
			}
			c.mu.Unlock()
			continue
		}
		c.left = n
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= n
	return n, err
}

func (c *execConn) explain(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := strings.TrimSpace(c.stderr.String()); s != "" {
		return fmt.Errorf("%w (%s)", err, s)
	}
	return err
}

func (c *execConn) Write(p []byte) (int, error)        { return c.hj.Conn.Write(p) }
func (c *execConn) Close() error                       { c.hj.Close(); return nil }
func (c *execConn) LocalAddr() net.Addr                { return c.hj.Conn.LocalAddr() }
func (c *execConn) RemoteAddr() net.Addr               { return c.hj.Conn.RemoteAddr() }
func (c *execConn) SetDeadline(t time.Time) error      { return c.hj.Conn.SetDeadline(t) }
func (c *execConn) SetReadDeadline(t time.Time) error  { return c.hj.Conn.SetReadDeadline(t) }
func (c *execConn) SetWriteDeadline(t time.Time) error { return c.hj.Conn.SetWriteDeadline(t) }

// execAttach starts cmd in the container with its stdin and stdout attached.
func execAttach(ctx context.Context, c *client.Client, id string, cmd []string) (*execConn, error) {
	ex, err := c.ExecCreate(ctx, id, client.ExecCreateOptions{AttachStdin: true, AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return nil, fmt.Errorf("docker: exec in %s: %w", short(id), err)
	}
	hj, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker: attach to exec in %s: %w", short(id), err)
	}
	return &execConn{hj: hj.HijackedResponse, r: hj.Reader}, nil
}

// execOutput runs cmd in the container and returns its stdout; an exit
// status other than 0 is an error carrying its stderr.
func execOutput(ctx context.Context, c *client.Client, id string, cmd []string) ([]byte, error) {
	ex, err := c.ExecCreate(ctx, id, client.ExecCreateOptions{AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return nil, fmt.Errorf("docker: exec in %s: %w", short(id), err)
	}
	hj, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, err
	}
	conn := &execConn{hj: hj.HijackedResponse, r: hj.Reader}
	defer conn.Close()
	done := make(chan struct{})
	var out []byte
	var rerr error
	go func() { out, rerr = io.ReadAll(conn); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		conn.Close()
		<-done
		return nil, ctx.Err()
	}
	if rerr != nil {
		return nil, rerr
	}
	in, err := c.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return nil, err
	}
	if in.ExitCode != 0 {
		return out, conn.explain(fmt.Errorf("docker: %s in %s: exit status %d", cmd[0], short(id), in.ExitCode))
	}
	return out, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
