// Package sshx is the SSH transport to remote runners: one SSH connection per
// runner, over which the BuildKit client reaches buildkitd's unix socket
// (direct-streamlocal@openssh.com) and commands read the runner's counters.
// No ssh or buildctl binary is needed on either side, and buildkitd never
// listens on TCP.
//
// Host keys are pinned, never skipped (docs/adr/0005-ssh-host-key-policy.md):
// the caller passes the key the runner was given or first showed for this
// lease, and every connection must present exactly that key.
package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc"
)

// Config is how to reach one runner.
type Config struct {
	Addr    string        // host:port of sshd
	User    string        // login (default root)
	Signer  ssh.Signer    // the lease's own client key
	HostKey ssh.PublicKey // the runner's host key, pinned
	// TrustFirst accepts the key presented at this first contact when
	// HostKey is nil — only for a server this lease has just created and
	// nobody else has reached; Conn.HostKey is then pinned for every later
	// connection of the lease.
	TrustFirst bool
	// Timeout bounds the TCP dial and the SSH handshake (default 15s).
	Timeout time.Duration
	// KeepAlive is the interval of keepalive@openssh.com requests (default
	// 10s); a connection that does not answer two in a row is closed.
	KeepAlive time.Duration
}

// HostKeyError is a runner presenting another host key than the pinned one.
type HostKeyError struct {
	Addr      string
	Got, Want string // SHA256 fingerprints
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("ssh %s: host key %s is not the runner's %s (refusing to connect)", e.Addr, e.Got, e.Want)
}

// Conn is an SSH connection to a runner.
type Conn struct {
	cfg     Config // as dialled, for Redial
	hostKey ssh.PublicKey
	client  *ssh.Client
	stop    chan struct{}
	done    chan struct{} // the keep-alives ended
	watched chan struct{} // the transport's end was seen

	mu   sync.Mutex
	lost error // why the connection ended: the transport's error, or missed keep-alives
}

// Dial connects and authenticates, within ctx and cfg.Timeout.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.HostKey == nil && !cfg.TrustFirst {
		return nil, errors.New("sshx: no host key to pin (refusing to connect unverified)")
	}
	if cfg.Signer == nil {
		return nil, errors.New("sshx: no client key")
	}
	if cfg.User == "" {
		cfg.User = "root"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	tcp, err := (&net.Dialer{}).DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", cfg.Addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = tcp.SetDeadline(dl)
	}
	var seen ssh.PublicKey
	ccfg := &ssh.ClientConfig{
		User: cfg.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(cfg.Signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			seen = key
			if cfg.HostKey != nil && !bytes.Equal(key.Marshal(), cfg.HostKey.Marshal()) {
				return &HostKeyError{Addr: cfg.Addr, Got: ssh.FingerprintSHA256(key), Want: ssh.FingerprintSHA256(cfg.HostKey)}
			}
			return nil
		},
	}
	if cfg.HostKey != nil {
		ccfg.HostKeyAlgorithms = []string{cfg.HostKey.Type()}
	}
	cc, chans, reqs, err := ssh.NewClientConn(tcp, cfg.Addr, ccfg)
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("ssh %s: %w", cfg.Addr, err)
	}
	_ = tcp.SetDeadline(time.Time{})
	c := &Conn{cfg: cfg, hostKey: seen, client: ssh.NewClient(cc, chans, reqs), stop: make(chan struct{}), done: make(chan struct{}), watched: make(chan struct{})}
	go c.keepAlive(cfg.KeepAlive)
	go c.watch()
	return c, nil
}

// watch records why the transport ended (a reset, a closed link) unless
// Close ended it: what was using the connection then fails naming the link
// and its cause, not only the symptom ("error reading from server: EOF").
func (c *Conn) watch() {
	defer close(c.watched)
	err := c.client.Wait()
	select {
	case <-c.stop:
		return
	default:
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = errors.New("closed by the runner or the network on the way (EOF)")
	}
	c.fail(fmt.Errorf("ssh %s: connection lost: %w", c.cfg.Addr, err))
}

// Redial opens a new connection to the same machine, its host key the one
// this connection saw.
func (c *Conn) Redial(ctx context.Context) (*Conn, error) {
	cfg := c.cfg
	cfg.HostKey, cfg.TrustFirst = c.hostKey, false
	return Dial(ctx, cfg)
}

// Ping asks the server for an answer (a keep-alive request: no session, no
// shell), within ctx.
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.Err(); err != nil {
		return err
	}
	select {
	case err := <-c.keepAliveRequest():
		if err != nil {
			return c.explain(fmt.Errorf("ssh %s: no answer: %w", c.cfg.Addr, err))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ssh %s: no answer: %w", c.cfg.Addr, ctx.Err())
	}
}

// keepAliveRequest sends a keep-alive request; its answer (or the error)
// arrives on the channel, which never blocks the sender.
func (c *Conn) keepAliveRequest() <-chan error {
	answered := make(chan error, 1)
	go func() { _, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil); answered <- err }()
	return answered
}

// keepAlive asks the server every interval; two missed answers close the
// connection and record why, for Err and for the errors of what was using it.
func (c *Conn) keepAlive(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		select {
		case <-c.stop:
			return
		case err := <-c.keepAliveRequest():
			if err == nil {
				missed = 0
				continue
			}
			c.fail(fmt.Errorf("ssh %s: connection lost: %w", c.cfg.Addr, err))
			return
		case <-time.After(every):
			if missed++; missed >= 2 {
				c.fail(fmt.Errorf("ssh %s: connection lost: no answer to two keep-alives in %v", c.cfg.Addr, 2*every))
				return
			}
		}
	}
}

func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.lost == nil {
		c.lost = err
	}
	c.mu.Unlock()
	c.client.Close()
}

// HostKey is the key the runner presented (to pin for the lease's later connections).
func (c *Conn) HostKey() ssh.PublicKey { return c.hostKey }

// Err is why the connection was lost, or nil while it is up.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// explain prefers the recorded loss over the symptom it caused. A symptom
// of a dead transport (EOF, a closed connection) can come before watch
// has recorded why: it waits for watch, briefly.
func (c *Conn) explain(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		select {
		case <-c.watched:
		case <-time.After(time.Second):
		}
	}
	if lost := c.Err(); lost != nil {
		return fmt.Errorf("%w (%v)", lost, err)
	}
	return err
}

// openTimeout bounds opening a channel when the caller's context does not.
const openTimeout = 30 * time.Second

// openChannel runs open (a session, a forwarded socket) and gives up when
// ctx ends or the connection is lost. x/crypto/ssh waits for the server's
// answer to a channel open without a deadline, forever on a connection that
// died before the request went out; what open returns after giving up is
// closed.
func openChannel[T io.Closer](ctx context.Context, c *Conn, what string, open func() (T, error)) (T, error) {
	var zero T
	if err := c.Err(); err != nil {
		return zero, fmt.Errorf("ssh %s: %s: %w", c.cfg.Addr, what, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, openTimeout)
		defer cancel()
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := open()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return zero, c.explain(fmt.Errorf("ssh %s: %s: %w", c.cfg.Addr, what, r.err))
		}
		return r.v, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil {
				_ = r.v.Close()
			}
		}()
		return zero, c.explain(fmt.Errorf("ssh %s: %s: no answer: %w", c.cfg.Addr, what, ctx.Err()))
	}
}

// DialUnix opens a stream to a unix socket on the runner.
func (c *Conn) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	return openChannel(ctx, c, "open "+path, func() (net.Conn, error) { return c.client.Dial("unix", path) })
}

// DialTCP opens a stream to a TCP address as the runner reaches it
// (direct-tcpip, ssh -L).
func (c *Conn) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	return openChannel(ctx, c, "open "+addr, func() (net.Conn, error) { return c.client.Dial("tcp", addr) })
}

// ListenLoopback asks the runner's sshd to listen on a port of the
// runner's loopback (a remote forward, ssh -R 127.0.0.1:0): what connects
// there on the runner reaches the returned listener here. Closing the
// listener cancels the forward.
func (c *Conn) ListenLoopback(ctx context.Context) (net.Listener, error) {
	return openChannel(ctx, c, "listen on the runner's loopback", func() (net.Listener, error) {
		return c.client.Listen("tcp", "127.0.0.1:0")
	})
}

// DialCommand runs cmd on the runner and makes its standard input and
// output the stream (a `buildctl dial-stdio` bridge, for a key that may
// forward nothing). Closing the stream ends the command.
func (c *Conn) DialCommand(ctx context.Context, cmd string) (net.Conn, error) {
	s, err := openChannel(ctx, c, "session", c.client.NewSession)
	if err != nil {
		return nil, err
	}
	in, err := s.StdinPipe()
	if err == nil {
		var out io.Reader
		if out, err = s.StdoutPipe(); err == nil {
			if err = s.Start(cmd); err == nil {
				return &commandConn{s: s, in: in, out: out, addr: c.client.RemoteAddr()}, nil
			}
		}
	}
	s.Close()
	return nil, c.explain(fmt.Errorf("ssh %s: %q: %w", c.cfg.Addr, cmd, err))
}

// commandConn is a remote command's stdin and stdout as a net.Conn.
type commandConn struct {
	s    *ssh.Session
	in   io.WriteCloser
	out  io.Reader
	addr net.Addr
}

func (c *commandConn) Read(p []byte) (int, error)       { return c.out.Read(p) }
func (c *commandConn) Write(p []byte) (int, error)      { return c.in.Write(p) }
func (c *commandConn) Close() error                     { _ = c.in.Close(); return c.s.Close() }
func (c *commandConn) LocalAddr() net.Addr              { return c.addr }
func (c *commandConn) RemoteAddr() net.Addr             { return c.addr }
func (c *commandConn) SetDeadline(time.Time) error      { return nil }
func (c *commandConn) SetReadDeadline(time.Time) error  { return nil }
func (c *commandConn) SetWriteDeadline(time.Time) error { return nil }

// grpcWindow is the HTTP/2 flow-control window over SSH.
const grpcWindow = 16 << 20

// BuildKit is a BuildKit client for the runner's buildkitd socket.
func (c *Conn) BuildKit(ctx context.Context, socket string) (*client.Client, error) {
	return c.buildKit(ctx, func(ctx context.Context) (net.Conn, error) { return c.DialUnix(ctx, socket) })
}

// BuildKitCommand is a BuildKit client through a command on the runner
// that bridges to buildkitd (DialCommand).
func (c *Conn) BuildKitCommand(ctx context.Context, cmd string) (*client.Client, error) {
	return c.buildKit(ctx, func(ctx context.Context) (net.Conn, error) { return c.DialCommand(ctx, cmd) })
}

func (c *Conn) buildKit(ctx context.Context, dial func(context.Context) (net.Conn, error)) (*client.Client, error) {
	return client.New(ctx, "", client.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return dial(ctx)
	}),
		// HTTP/2's default 64 KiB windows, each refill a round trip through
		// the SSH channel, throttle the build's streams; large windows let
		// them flow (BenchmarkTransport: 8.2 → 3.6 × the unix socket).
		client.WithGRPCDialOption(grpc.WithInitialWindowSize(grpcWindow)),
		client.WithGRPCDialOption(grpc.WithInitialConnWindowSize(grpcWindow)))
}

// Run runs a command on the runner and returns its standard output; the
// error carries its standard error.
func (c *Conn) Run(ctx context.Context, cmd string) ([]byte, error) {
	return c.RunInput(ctx, cmd, nil)
}

// Addr is the runner's sshd address.
func (c *Conn) Addr() string { return c.cfg.Addr }

// RunInput is Run with stdin as the command's standard input; an error
// names the command's first word only (a script's arguments stay out).
func (c *Conn) RunInput(ctx context.Context, cmd string, stdin []byte) ([]byte, error) {
	var out bytes.Buffer
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	err := c.RunStream(ctx, cmd, in, &out)
	return out.Bytes(), err
}

// RunStream runs a command with stdin (nil: none) as its standard input
// and its standard output written to stdout as it comes; the error
// carries its standard error. A command given input is named by its first
// word only, as RunInput's.
func (c *Conn) RunStream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) error {
	s, err := openChannel(ctx, c, "session", c.client.NewSession)
	if err != nil {
		return err
	}
	defer s.Close()
	// A cancelled command's session may still deliver output after this
	// returns: none of it reaches stdout then.
	out := &closingWriter{w: stdout}
	defer out.close()
	var errb bytes.Buffer
	s.Stdout, s.Stderr = out, &errb
	if stdin != nil {
		s.Stdin = stdin
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		return ctx.Err()
	}
	if err != nil {
		shown := cmd
		if stdin != nil {
			shown, _, _ = strings.Cut(cmd, " ")
		}
		return c.explain(fmt.Errorf("ssh %s: %q: %w: %s", c.cfg.Addr, shown, err, bytes.TrimSpace(errb.Bytes())))
	}
	return nil
}

// closingWriter passes writes to w until it is closed, and fails them after.
type closingWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (c *closingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, io.ErrClosedPipe
	}
	return c.w.Write(p)
}

func (c *closingWriter) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// Close ends the connection and its keep-alives. It is safe to call twice.
func (c *Conn) Close() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	err := c.client.Close()
	<-c.done
	<-c.watched
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
