package client_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// deniedAttemptTimeout is one attempt's timeout in the tests below: short,
// since the responder stays silent on purpose.
const deniedAttemptTimeout = 200 * time.Millisecond

// violationWaitMax bounds the wait for the server's asynchronous report
// of a permission violation.
const violationWaitMax = 5 * time.Second

// serverStartMax bounds the wait for a test server to accept connections.
const serverStartMax = 5 * time.Second

// startAuthServer starts a server on opts (users, nkeys) on a free port.
func startAuthServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", -1, true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(serverStartMax) {
		t.Fatal("server not ready")
	}
	return srv
}

// deniedEnv starts a server where user "u" may publish status requests
// for c1 and subscribe to subscribe, and a responder (user "svc") silent
// for the first silent requests (a writer failing over). It returns u's
// connection, a client on it, and the count of requests the responder saw.
func deniedEnv(t *testing.T, subscribe string, silent int64) (*nats.Conn, *client.Client, *atomic.Int64) {
	t.Helper()
	subject := events.RequestSubject(events.OpStatus, "c1")
	srv := startAuthServer(t, &server.Options{Users: []*server.User{
		{Username: "svc", Password: "svc_pw"},
		{Username: "u", Password: "u_pw", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{subject}},
			Subscribe: &server.SubjectPermission{Allow: []string{subscribe}},
		}},
	}})
	seen := respondAfter(t, srv, subject, silent)
	nc := connectAs(t, srv, "u", "u_pw")
	return nc, client.New(nc, client.WithTimeout(deniedAttemptTimeout), client.WithAttempts(4)), seen
}

func connectAs(t *testing.T, srv *server.Server, user, pw string) *nats.Conn {
	t.Helper()
	// The violations are expected: keep them out of the test output.
	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, pw), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// respondAfter answers status requests on subject with an empty status,
// staying silent for the first silent ones (a writer failing over). It
// returns the count of requests seen.
func respondAfter(t *testing.T, srv *server.Server, subject string, silent int64) *atomic.Int64 {
	t.Helper()
	var seen atomic.Int64
	nc := connectAs(t, srv, "svc", "svc_pw")
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if seen.Add(1) > silent {
			_ = m.Respond([]byte(`{"customer_id":"c1"}`))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &seen
}

// waitViolation waits until nc has been told of a permission violation.
func waitViolation(t *testing.T, nc *nats.Conn) error {
	t.Helper()
	deadline := time.Now().Add(violationWaitMax)
	for time.Now().Before(deadline) {
		if err := nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no permission violation reported")
	return nil
}

// A refused subscription elsewhere on a shared connection (the gateway
// shares one among client, key store, log follower and MCP server) stays
// in LastError until a reconnect; a later timeout on this client's
// request must still be retried, not taken for a denial.
func TestUnrelatedDeniedSubscriptionDoesNotDenyRequests(t *testing.T) {
	nc, c, seen := deniedEnv(t, "_INBOX.>", 1)
	if _, err := nc.Subscribe("elsewhere.forbidden", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := waitViolation(t, nc); !strings.Contains(err.Error(), "elsewhere.forbidden") {
		t.Fatalf("last error %v, want the refused subscription", err)
	}
	st, err := c.Status(context.Background(), "c1")
	if err != nil {
		t.Fatalf("status after an unrelated denial: %v (code %q), want an answer on the retry", err, ledger.ErrorCode(err))
	}
	if st.CustomerID != "c1" || seen.Load() != 2 {
		t.Fatalf("status %+v after %d requests, want c1's after 2", st, seen.Load())
	}
}

// A refused reply subscription is this request's: permission_denied at
// once, with no retry.
func TestDeniedInboxFailsFast(t *testing.T) {
	_, c, seen := deniedEnv(t, "other.>", 0)
	_, err := c.Status(context.Background(), "c1")
	if got := ledger.ErrorCode(err); got != ledger.CodePermissionDenied {
		t.Fatalf("status with the inbox refused: code %q (%v), want permission_denied", got, err)
	}
	if got := seen.Load(); got != 1 {
		t.Fatalf("%d requests sent, want 1 (no retry of a denial)", got)
	}
}
