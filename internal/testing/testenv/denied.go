package testenv

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Bounds of the permission checks. NATS reports a violation
// asynchronously, right after the server reads the offending message, so
// DeniedWait is only reached when the server let it through.
// NotDeliveredWait is how long a subscriber waits to show a message was
// not delivered.
const (
	DeniedWait       = 2 * time.Second
	NotDeliveredWait = 500 * time.Millisecond
	violationsMax    = 64 // buffered reports; more are dropped
)

// Watched is a connection that collects the permission violations the
// server reports on it.
type Watched struct {
	NC     *nats.Conn
	denied chan error
}

// ConnectWatched opens a connection with dial (given the error handler
// option to pass on) and closes it when the test ends.
func ConnectWatched(t testing.TB, dial func(opts ...nats.Option) (*nats.Conn, error)) *Watched {
	t.Helper()
	w := &Watched{denied: make(chan error, violationsMax)}
	nc, err := dial(nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case w.denied <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	w.NC = nc
	return w
}

// WantDenied publishes data on subject with a reply inbox (as a request
// would) and fails the test unless the server reports a publish
// violation for that subject.
func (w *Watched) WantDenied(t testing.TB, subject string, data []byte) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data, msg.Reply = data, w.NC.NewRespInbox()
	if err := w.NC.PublishMsg(msg); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	w.waitDenied(t, "publish", subject)
}

// WantSubDenied subscribes to subject and fails the test unless the
// server reports a subscription violation for it.
func (w *Watched) WantSubDenied(t testing.TB, subject string) {
	t.Helper()
	sub, err := w.NC.SubscribeSync(subject)
	if err != nil {
		t.Fatalf("subscribe %s: %v", subject, err)
	}
	defer sub.Unsubscribe()
	w.waitDenied(t, "subscription", subject)
}

func (w *Watched) waitDenied(t testing.TB, what, subject string) {
	t.Helper()
	if err := w.NC.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	want := `"` + subject + `"`
	deadline := time.After(DeniedWait)
	for {
		select {
		case err := <-w.denied:
			msg := strings.ToLower(err.Error())
			if strings.Contains(msg, "permissions violation") && strings.Contains(msg, what) && strings.Contains(err.Error(), want) {
				return
			}
		case <-deadline:
			t.Errorf("%s on %s was not denied within %s", what, subject, DeniedWait)
			return
		}
	}
}

// NoViolations fails the test if the server reported any violation on
// the connection. It flushes first, so the server has read everything
// sent, then gives the asynchronous report NotDeliveredWait to arrive.
func (w *Watched) NoViolations(t testing.TB, what string) {
	t.Helper()
	if err := w.NC.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	quiet := time.After(NotDeliveredWait)
	for {
		select {
		case err := <-w.denied:
			t.Errorf("%s: %v", what, err)
		case <-quiet:
			return
		}
	}
}
