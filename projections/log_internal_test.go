package projections

import (
	"context"
	"testing"

	"github.com/agentbill/agentbill/embedded"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startLog starts an embedded server for one test, with the log's stream,
// and returns it with a JetStream context on an in-process connection.
func startLog(t *testing.T) (*embedded.Server, jetstream.JetStream) {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	js := connectJS(t, "", nats.InProcessServer(srv.Server))
	if _, err := EnsureStream(context.Background(), js, 1); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

// connectJS connects to url for the rest of the test.
func connectJS(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
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
