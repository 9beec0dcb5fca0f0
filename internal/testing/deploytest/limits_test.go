package deploytest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// nats.conf's bounds (its max_connections and max_subscriptions).
const (
	natsConfConnectionsMax   = 10000
	natsConfSubscriptionsMax = 1024
	// limitsConnectionsMax is the lowered max_connections of the copy
	// that shows the server refusing a connection: opening 10,001 would
	// test the machine's file descriptors, not the setting.
	limitsConnectionsMax = 3
)

var maxConnectionsLine = regexp.MustCompile(`(?m)^max_connections: \d+$`)

// startNATSConf starts the embedded server from a copy of nats.conf (its
// port and store changed, and edit applied).
func startNATSConf(t *testing.T, edit func([]byte) []byte) *embedded.Server {
	t.Helper()
	dir := t.TempDir()
	conf := testenv.WriteNATSConf(t, filepath.Join(dir, "nats.conf"), testenv.FreePort(t), filepath.Join(dir, "store"))
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, edit(b), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := embedded.Start(embedded.Options{ConfigFile: conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// TestNATSConfBoundsConnectionsAndSubscriptions: nats.conf sets the
// bounds it says, and a server run from it enforces them: a connection's
// subscription past max_subscriptions is refused (an asynchronous error;
// the connection stays), and a connection past max_connections is refused
// (shown with the line lowered to 3 in a copy).
func TestNATSConfBoundsConnectionsAndSubscriptions(t *testing.T) {
	opts, err := server.ProcessConfigFile(testenv.NATSConfPath)
	if err != nil {
		t.Fatal(err)
	}
	if opts.MaxConn != natsConfConnectionsMax || opts.MaxSubs != natsConfSubscriptionsMax {
		t.Fatalf("nats.conf: max_connections %d, max_subscriptions %d; want %d and %d",
			opts.MaxConn, opts.MaxSubs, natsConfConnectionsMax, natsConfSubscriptionsMax)
	}

	url := startNATSConf(t, func(b []byte) []byte { return b }).ClientURL()
	refused := make(chan error, 1)
	nc, err := testenv.NATSConfCreds("agent").Connect(url, nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case refused <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i := range natsConfSubscriptionsMax {
		if _, err := nc.SubscribeSync(fmt.Sprintf("_INBOX_agent.limits.%d", i)); err != nil {
			t.Fatalf("subscription %d: %v", i+1, err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("%d subscriptions, the bound: %v", natsConfSubscriptionsMax, err)
	}
	select {
	case err := <-refused:
		t.Fatalf("within the bound: %v", err)
	default:
	}
	_, _ = nc.SubscribeSync("_INBOX_agent.limits.over")
	_ = nc.Flush()
	select {
	case err := <-refused:
		if !errors.Is(err, nats.ErrMaxSubscriptionsExceeded) {
			t.Errorf("subscription %d: %v, want %v", natsConfSubscriptionsMax+1, err, nats.ErrMaxSubscriptionsExceeded)
		}
	case <-time.After(deniedWait):
		t.Errorf("subscription %d was not refused", natsConfSubscriptionsMax+1)
	}

	srv := startNATSConf(t, func(b []byte) []byte {
		if n := len(maxConnectionsLine.FindAll(b, -1)); n != 1 {
			t.Fatalf("nats.conf has %d max_connections lines, want 1", n)
		}
		return maxConnectionsLine.ReplaceAll(b, []byte(fmt.Sprintf("max_connections: %d", limitsConnectionsMax)))
	})
	url = srv.ClientURL()
	for i := range limitsConnectionsMax {
		c, err := testenv.NATSConfCreds("agent").Connect(url, nats.NoReconnect())
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, limitsConnectionsMax, err)
		}
		defer c.Close()
	}
	// The server answers -ERR 'maximum connections exceeded' and closes;
	// the client may meet the closed socket before it reads the -ERR.
	if c, err := testenv.NATSConfCreds("agent").Connect(url, nats.NoReconnect()); err == nil {
		c.Close()
		t.Errorf("connection %d past max_connections %d was accepted", limitsConnectionsMax+1, limitsConnectionsMax)
	}
	if n := srv.NumClients(); n != limitsConnectionsMax {
		t.Errorf("the server holds %d clients, want %d", n, limitsConnectionsMax)
	}
}
