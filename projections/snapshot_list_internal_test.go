package projections

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A listing of the stored snapshots that never arrives ends after
// SnapshotListTimeout as a stall (NATS's fault, not the snapshot's). The
// listing is made never to arrive for real: the reading user may not
// subscribe to the two-token inboxes that the object store client's
// watcher is delivered on (its requests' replies use three tokens).
func TestSnapshotListingThatNeverArrives(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, Users: []*server.User{
			{Username: "writer", Password: "writer"},
			{Username: "blind", Password: "blind", Permissions: &server.Permissions{
				Subscribe: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"_INBOX.*"}}}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	objects := func(user string) jetstream.ObjectStore {
		js := connectJS(t, srv.ClientURL(), nats.UserInfo(user, user),
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // the permission violations
		obs, err := js.CreateOrUpdateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: SnapshotBucket})
		if err != nil {
			t.Fatal(err)
		}
		return obs
	}
	if _, err := objects("writer").Put(context.Background(), jetstream.ObjectMeta{Name: snapshotPrefix + "0/1/part-0"},
		bytes.NewReader([]byte("a part"))); err != nil {
		t.Fatal(err)
	}
	blind := objects("blind")
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := storedSnapshots(context.Background(), blind, "0")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errSnapshotStalled) {
			t.Fatalf("listing: %v, want %v", err, errSnapshotStalled)
		}
		t.Logf("listing gave up after %s: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(SnapshotListTimeout + 5*time.Second):
		t.Fatalf("the listing still waits %s after it began", SnapshotListTimeout+5*time.Second)
	}
}
