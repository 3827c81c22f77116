package testenv

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StartNATS runs a real nats-server in process (with JetStream when js is
// true) on a loopback port; it stops with the test.
func StartNATS(t testing.TB, js bool) *server.Server {
	t.Helper()
	return startNATS(t, &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, JetStream: js, StoreDir: t.TempDir()})
}

// RestartNATS stops s and starts a server with the same options on the
// same port (an outage, then NATS back where clients look for it).
func RestartNATS(t testing.TB, s *server.Server, down time.Duration) *server.Server {
	t.Helper()
	start := StopNATS(t, s)
	time.Sleep(down)
	return start()
}

// StopNATS shuts s down; start brings it back on the same port with the
// same store.
func StopNATS(t testing.TB, s *server.Server) (start func() *server.Server) {
	t.Helper()
	port := s.Addr().(*net.TCPAddr).Port
	opts := &server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true, JetStream: s.JetStreamEnabled(), StoreDir: s.StoreDir()}
	s.Shutdown()
	s.WaitForShutdown()
	return func() *server.Server { t.Helper(); return startNATS(t, opts) }
}

func startNATS(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// ConnectNATS connects a client to s; it closes with the test.
func ConnectNATS(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStreamAt is a JetStream client of the NATS at url (a cluster's URLs,
// comma-separated), reconnecting for as long as the test runs.
func JetStreamAt(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// SubscribeNATS subscribes to subject on s and returns once the server has
// the subscription, so nothing published afterwards is missed.
func SubscribeNATS(t testing.TB, s *server.Server, subject string) *nats.Subscription {
	t.Helper()
	nc := ConnectNATS(t, s)
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}
