package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// repliesWaitMax bounds every wait in these tests for something that
// should happen at once.
const repliesWaitMax = 5 * time.Second

// repliesConn starts a NATS server and returns a connection to it and a
// second one for responders.
func repliesConn(t *testing.T) (*nats.Conn, *nats.Conn) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(repliesWaitMax) {
		t.Fatal("server not ready")
	}
	conn := func() *nats.Conn {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	return conn(), conn()
}

// silentClient returns a client, and its connection, whose requests on
// "silent" reach a responder that never answers.
func silentClient(t *testing.T) (*nats.Conn, *Client) {
	t.Helper()
	nc, rc := repliesConn(t)
	if _, err := rc.Subscribe("silent", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := rc.Flush(); err != nil {
		t.Fatal(err)
	}
	return nc, New(nc)
}

// TestRequestsGetTheirOwnReplies: concurrent requests on one Client each
// get the reply to their own body, and a reply that comes after its
// request gave up is dropped, not handed to a later request.
func TestRequestsGetTheirOwnReplies(t *testing.T) {
	nc, rc := repliesConn(t)
	release := make(chan struct{})
	if _, err := rc.Subscribe("echo", func(m *nats.Msg) {
		if string(m.Data) == "late" {
			go func() { <-release; _ = m.Respond([]byte("late reply")) }()
			return
		}
		_ = m.Respond(m.Data)
	}); err != nil {
		t.Fatal(err)
	}
	if err := rc.Flush(); err != nil {
		t.Fatal(err)
	}
	c := New(nc)
	if _, err := c.request(context.Background(), "echo", []byte("late"), 50*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("a request nobody answers in time: %v, want %v", err, nats.ErrTimeout)
	}
	close(release) // the late reply is now on its way, to a request that stopped waiting

	const requests, senders = 2000, 32
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < requests; i += senders {
				body := fmt.Sprintf("request %d", i)
				m, err := c.request(context.Background(), "echo", []byte(body), repliesWaitMax)
				if err != nil {
					errs <- err
					return
				}
				if string(m.Data) != body {
					errs <- fmt.Errorf("request %q got %q", body, m.Data)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c.replies.mu.Lock()
	left := len(c.replies.waiting)
	c.replies.mu.Unlock()
	if left != 0 {
		t.Errorf("%d requests still registered after every request returned", left)
	}
}

// TestRequestEndsWithItsContext: a request stops waiting when its context
// is cancelled, long before its timeout.
func TestRequestEndsWithItsContext(t *testing.T) {
	_, c := silentClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := c.request(ctx, "silent", nil, 2*repliesWaitMax); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v, want %v", err, context.Canceled)
	}
	if took := time.Since(start); took > repliesWaitMax {
		t.Fatalf("the cancelled request returned after %v", took)
	}
	if _, err := c.request(ctx, "silent", nil, 2*repliesWaitMax); !errors.Is(err, context.Canceled) {
		t.Fatalf("request on a cancelled context: %v, want %v", err, context.Canceled)
	}
}

// TestRequestEndsWhenTheConnectionCloses: a waiting request returns
// nats.ErrConnectionClosed when its connection closes, not at its
// timeout; so does any request after.
func TestRequestEndsWhenTheConnectionCloses(t *testing.T) {
	nc, c := silentClient(t)
	time.AfterFunc(50*time.Millisecond, nc.Close)
	start := time.Now()
	if _, err := c.request(context.Background(), "silent", nil, 2*repliesWaitMax); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("request when the connection closed: %v, want %v", err, nats.ErrConnectionClosed)
	}
	if took := time.Since(start); took > repliesWaitMax {
		t.Fatalf("the request returned %v after the connection closed", took)
	}
	if _, err := c.request(context.Background(), "silent", nil, 2*repliesWaitMax); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("request on a closed connection: %v, want %v", err, nats.ErrConnectionClosed)
	}
}

// TestRequestWithoutResponders: nobody subscribed is nats.ErrNoResponders
// at once, as nats.go's requests report it.
func TestRequestWithoutResponders(t *testing.T) {
	nc, _ := repliesConn(t)
	c := New(nc)
	start := time.Now()
	if _, err := c.request(context.Background(), "nobody", nil, 2*repliesWaitMax); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request nobody listens to: %v, want %v", err, nats.ErrNoResponders)
	}
	if took := time.Since(start); took > repliesWaitMax {
		t.Fatalf("no responders reported after %v", took)
	}
}

// TestClientsOnOneConnectionShareItsReplies: Clients made on one
// connection, as a program making one per request would, share one reply
// subscription; a closed connection is forgotten.
func TestClientsOnOneConnectionShareItsReplies(t *testing.T) {
	nc, rc := repliesConn(t)
	if _, err := rc.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := rc.Flush(); err != nil {
		t.Fatal(err)
	}
	const clients = 20
	for i := range clients {
		body := fmt.Sprintf("client %d", i)
		m, err := New(nc).request(context.Background(), "echo", []byte(body), repliesWaitMax)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if string(m.Data) != body {
			t.Fatalf("client %d: got %q, want %q", i, m.Data, body)
		}
	}
	if n := nc.NumSubscriptions(); n != 1 {
		t.Errorf("%d clients on one connection: %d subscriptions, want 1", clients, n)
	}
	nc.Close()
	deadline := time.Now().Add(repliesWaitMax)
	for {
		if _, ok := connReplies.Load(nc); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection's replies are still held")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := New(nc).request(context.Background(), "echo", nil, repliesWaitMax); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("a new client on the closed connection: %v, want %v", err, nats.ErrConnectionClosed)
	}
}

// TestRequestWithoutConnection: a Client made on no connection answers
// nats.ErrInvalidConnection, as nats.go's requests do.
func TestRequestWithoutConnection(t *testing.T) {
	if _, err := New(nil).request(context.Background(), "echo", nil, repliesWaitMax); !errors.Is(err, nats.ErrInvalidConnection) {
		t.Fatalf("request without a connection: %v, want %v", err, nats.ErrInvalidConnection)
	}
}
