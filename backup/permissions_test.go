package backup_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/agentbill/agentbill/backup"
	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestPermissionsAreEnough backs up and restores as users allowed only
// CreatePublish and RestorePublish (and their inboxes): the lists are
// what an operator grants, so they must be enough.
func TestPermissionsAreEnough(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	src := authServer(t)
	admin := userConn(t, src, "admin")
	fillLog(t, ctx, admin)
	ks, err := keys.Open(ctx, admin, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ks.Create(ctx, keys.RoleAdmin, "", "ops"); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "backup")
	m, err := backup.Create(ctx, backup.Options{Conn: userConn(t, src, "backup"), Out: out})
	if err != nil {
		t.Fatalf("backup as a user with backup.CreatePublish: %v", err)
	}
	if len(m.Streams) != 2 || m.Streams[1].Archive.Bytes < archiveBytesMin {
		t.Fatalf("backup: %+v; want the keys and a log of at least %d bytes (so chunks are acked)", m.Streams, archiveBytesMin)
	}
	dst := authServer(t)
	got, err := backup.Restore(ctx, backup.RestoreOptions{Conn: userConn(t, dst, "restore"), From: out})
	if err != nil {
		t.Fatalf("restore as a user with backup.RestorePublish: %v", err)
	}
	for i, s := range got.Streams {
		if s.State.LastSeq != m.Streams[i].State.LastSeq {
			t.Errorf("%s last sequence: got %d, want %d", s.Name, s.State.LastSeq, m.Streams[i].State.LastSeq)
		}
	}
}

// fillLog creates the log stream and fills it with more random bytes than
// one window of chunks (not commits: only the transfer is under test).
func fillLog(t *testing.T, ctx context.Context, nc *nats.Conn) {
	t.Helper()
	js := testenv.JetStream(t, nc)
	if _, err := projections.EnsureStream(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	const msgBytes = 256 << 10
	payload := make([]byte, msgBytes)
	for n := 0; n < archiveBytesMin+msgBytes; n += msgBytes {
		_, _ = rand.Read(payload)
		if _, err := js.Publish(ctx, "agentbill.log.0", payload); err != nil {
			t.Fatal(err)
		}
	}
}

// authServer starts an in-process server with three users: admin (all),
// backup (CreatePublish) and restore (RestorePublish), each subscribing
// only to its own inbox prefix, _INBOX_<user>.
func authServer(t *testing.T) *server.Server {
	t.Helper()
	user := func(name string, pub []string) *server.User {
		return &server.User{Username: name, Password: "pw_" + name, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: pub},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX_" + name + ".>"}},
		}}
	}
	s, err := server.NewServer(&server.Options{ServerName: "auth", DontListen: true, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, Users: []*server.User{
			{Username: "admin", Password: "pw_admin"},
			user("backup", backup.CreatePublish()),
			user("restore", backup.RestorePublish()),
		}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(embedded.ReadyTimeout) {
		t.Fatal("server not ready")
	}
	return s
}

func userConn(t *testing.T, s *server.Server, name string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.UserInfo(name, "pw_"+name),
		nats.CustomInboxPrefix("_INBOX_"+name), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			t.Errorf("%s: %v", name, err)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
