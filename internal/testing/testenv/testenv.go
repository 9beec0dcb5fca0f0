// Package testenv starts what tests need for real: an embedded nats-server
// with JetStream on files in t.TempDir(), a writer with a controllable
// clock, a log follower and clients; it builds the agentbill and
// nats-server binaries for the tests that run processes, and writes the
// repository's nats.conf with test passwords. Nothing here is a mock. It
// is test harness only: no production package imports it.
package testenv

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadyTimeout bounds how long a test waits for a writer to serve.
const ReadyTimeout = 20 * time.Second

// Clock is a controllable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Server is an embedded nats-server on a store directory that outlives
// restarts of the writer. It has the default mode's authorization, as
// `agentbill serve` runs it (SECURITY.md, "Default mode").
type Server struct {
	*embedded.Server
	Dir string
}

// StartServer starts an in-process server (no TCP) storing in dir, or in a
// fresh temp dir if dir is "".
func StartServer(t testing.TB, dir string) *Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := embedded.Start(embedded.Options{StoreDir: dir})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return &Server{Server: s, Dir: dir}
}

// Connect opens a connection as the service, as serve opens its own (the
// writer's requests, the gateway, MCP, the dashboard): through the
// server's loopback listener (embedded.Server.Connect).
func Connect(t testing.TB, s *Server) *nats.Conn {
	t.Helper()
	return connected(t)(s.Connect("testenv"))
}

// ConnectLog opens an in-process connection as the service, as serve
// opens the writer's log connection (embedded.Server.ConnectInProcess):
// the connection commits, their acks and replays travel on.
func ConnectLog(t testing.TB, s *Server) *nats.Conn {
	t.Helper()
	return connected(t)(s.ConnectInProcess("testenv-log"))
}

// connected returns a check of a connect's result: it fails t on an
// error, and closes the connection when t ends.
func connected(t testing.TB) func(*nats.Conn, error) *nats.Conn {
	return func(nc *nats.Conn, err error) *nats.Conn {
		t.Helper()
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
}

// ConnectAnonymous opens an in-process connection with no credential:
// what any process on serve's NATS port is, an agent.
func ConnectAnonymous(t testing.TB, s *Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(s.Server), nats.Name("testenv-anonymous")}, opts...)...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream handle on nc.
func JetStream(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// Writer is a running writer; Stop ends it and waits.
type Writer struct {
	*projections.Writer
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned; err is then set
	err    error
}

// Stop stops the writer and waits for it to return.
func (w *Writer) Stop(t testing.TB) {
	t.Helper()
	w.cancel()
	<-w.done
	if w.err != nil {
		t.Errorf("writer returned %v", w.err)
	}
}

// StartWriter starts a writer on its own connection to s and waits until
// it serves. Default budget nil means no default (no_budget).
func StartWriter(t testing.TB, s *Server, clock *Clock, def *ledger.DefaultBudget, opts ...func(*projections.Config)) *Writer {
	t.Helper()
	cfg := projections.Config{Conn: Connect(t, s), LogConn: ConnectLog(t, s), Default: def, Sweep: 20 * time.Millisecond}
	if clock != nil {
		cfg.Now = clock.Now
	}
	for _, o := range opts {
		o(&cfg)
	}
	pw := projections.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{Writer: pw, cancel: cancel, done: make(chan struct{})}
	go func() {
		w.err = pw.Run(ctx)
		close(w.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-w.done:
		case <-time.After(ReadyTimeout):
		}
	})
	deadline := time.Now().Add(ReadyTimeout)
	for !pw.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("writer not ready within %s", ReadyTimeout)
		}
		select {
		case <-w.done:
			t.Fatalf("writer stopped: %v", w.err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return w
}

// Client returns an agent client on its own connection.
func Client(t testing.TB, s *Server) *client.Client {
	t.Helper()
	return client.New(Connect(t, s), client.WithTimeout(5*time.Second))
}

// Units parses a decimal or fails the test.
func Units(t testing.TB, s string) events.Units {
	t.Helper()
	u, err := events.ParseUnits(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Ptr returns a pointer to the units s.
func Ptr(t testing.TB, s string) *events.Units {
	t.Helper()
	u := Units(t, s)
	return &u
}

// StreamEvents returns every event in the stream, in order.
func StreamEvents(t testing.TB, nc *nats.Conn) []*events.Envelope {
	t.Helper()
	var out []*events.Envelope
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	_, err := projections.Replay(ctx, JetStream(t, nc), projections.ReplayStop{}, func(_ uint64, e *events.Envelope) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	return out
}

// CountType counts events of type ty (of customer cid, or all if "").
func CountType(evs []*events.Envelope, cid string, ty events.Type) int {
	n := 0
	for _, e := range evs {
		if e.Type == ty && (cid == "" || e.CustomerID == cid) {
			n++
		}
	}
	return n
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartFollower starts a read-side follower of s's log on its own
// connection, until the test ends.
func StartFollower(t testing.TB, s *Server) *projections.Follower {
	t.Helper()
	f := projections.NewFollower(projections.FollowerConfig{JS: JetStream(t, Connect(t, s))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}
