package backup_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/agentbill/agentbill/backup"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go/jetstream"
)

// testTimeout bounds each wait in these tests.
const testTimeout = 20 * time.Second

// customers is how many customers the ledger fixture serves.
const customers = 5

var epoch = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// ledgerFixture is a server with a ledger: traffic for several customers,
// a stored state snapshot, an API key, and the statuses it ended with.
type ledgerFixture struct {
	srv    *testenv.Server
	clock  *testenv.Clock
	status map[string]*ledger.StatusReply
}

func newLedger(t *testing.T) *ledgerFixture {
	t.Helper()
	f := &ledgerFixture{srv: testenv.StartServer(t, ""), clock: testenv.NewClock(epoch)}
	w := testenv.StartWriter(t, f.srv, f.clock, nil)
	c := testenv.Client(t, f.srv)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	traffic(t, ctx, c, "before")
	snaps := &w.Stats().Snapshots
	w.SnapshotNow()
	for deadline := time.Now().Add(testTimeout); snaps.Saved.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot stored within %s", testTimeout)
		}
	}
	traffic(t, ctx, c, "after") // a tail the restored writer replays after the snapshot
	ks, err := keys.Open(ctx, testenv.Connect(t, f.srv), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ks.Create(ctx, keys.RoleAdmin, "", "ops"); err != nil {
		t.Fatal(err)
	}
	f.status = statuses(t, ctx, c)
	w.Stop(t)
	return f
}

// traffic sets budgets, reserves, records and tops up for every customer.
func traffic(t *testing.T, ctx context.Context, c interface {
	SetBudget(context.Context, string, ledger.BudgetRequest) (*ledger.StatusReply, error)
	Preflight(context.Context, string, ledger.PreflightRequest) (*ledger.PreflightReply, error)
	Record(context.Context, string, ledger.RecordRequest) (*ledger.RecordReply, error)
	TopUp(context.Context, string, ledger.TopUpRequest) (*ledger.StatusReply, error)
}, round string) {
	t.Helper()
	for i := range customers {
		id := fmt.Sprintf("cust_%d", i)
		steps := []error{}
		if round == "before" {
			_, err := c.SetBudget(ctx, id, ledger.BudgetRequest{Limit: testenv.Ptr(t, fmt.Sprint(100+i)), Period: "month"})
			steps = append(steps, err)
		}
		pf, err := c.Preflight(ctx, id, ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "10")})
		steps = append(steps, err)
		if err == nil {
			_, err = c.Record(ctx, id, ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "7.5"), ReservationID: pf.ReservationID})
			steps = append(steps, err)
		}
		_, err = c.Preflight(ctx, id, ledger.PreflightRequest{AgentID: "b", EstimatedUnits: testenv.Ptr(t, "3")}) // left open
		steps = append(steps, err)
		_, err = c.TopUp(ctx, id, ledger.TopUpRequest{Units: testenv.Ptr(t, "2.25"), Note: round})
		steps = append(steps, err)
		if err := errors.Join(steps...); err != nil {
			t.Fatalf("traffic %s, %s: %v", round, id, err)
		}
	}
}

func statuses(t *testing.T, ctx context.Context, c interface {
	Status(context.Context, string) (*ledger.StatusReply, error)
}) map[string]*ledger.StatusReply {
	t.Helper()
	out := map[string]*ledger.StatusReply{}
	for i := range customers {
		id := fmt.Sprintf("cust_%d", i)
		s, err := c.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = s
	}
	return out
}

func create(t *testing.T, f *ledgerFixture, out string, force bool) (*backup.Manifest, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return backup.Create(ctx, backup.Options{Conn: testenv.Connect(t, f.srv), Out: out, Force: force})
}

func restore(t *testing.T, srv *testenv.Server, from string) (*backup.Manifest, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return backup.Restore(ctx, backup.RestoreOptions{Conn: testenv.Connect(t, srv), From: from})
}

func TestBackupRestoreIsByteIdentical(t *testing.T) {
	f := newLedger(t)
	out := filepath.Join(t.TempDir(), "backup")
	m, err := create(t, f, out, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range m.Streams {
		names = append(names, s.Name)
	}
	if want := []string{"OBJ_AGENTBILL_SNAPSHOTS", "KV_AGENTBILL_KEYS", "AGENTBILL"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("streams backed up: got %v, want %v", names, want)
	}
	if _, err := backup.ReadManifest(out); err != nil {
		t.Fatalf("read back the manifest: %v", err)
	}

	dst := testenv.StartServer(t, "")
	if _, err := restore(t, dst, out); err != nil {
		t.Fatal(err)
	}
	for _, s := range m.Streams {
		sameMessages(t, f.srv, dst, s.Name)
	}

	// The restored ledger starts from the restored snapshot, replays the
	// tail after it, and reports every balance as before.
	w := testenv.StartWriter(t, dst, f.clock, nil)
	if seq := w.Stats().Snapshots.LoadedSeq.Load(); seq == 0 {
		t.Error("the restored writer did not start from the restored snapshot")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	got := statuses(t, ctx, testenv.Client(t, dst))
	if !reflect.DeepEqual(got, f.status) {
		t.Errorf("statuses after restore:\n%+v\nwant\n%+v", got, f.status)
	}
}

// sameMessages compares every message of a stream on two servers: same
// sequences, subjects, headers, data and timestamps.
func sameMessages(t *testing.T, a, b *testenv.Server, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sa, sb := stream(t, ctx, a, name), stream(t, ctx, b, name)
	ia, err := sa.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := sb.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ia.State.Msgs != ib.State.Msgs || ia.State.FirstSeq != ib.State.FirstSeq || ia.State.LastSeq != ib.State.LastSeq || ia.State.Bytes != ib.State.Bytes {
		t.Fatalf("%s state: got %+v, want %+v", name, ib.State, ia.State)
	}
	if ia.State.Msgs == 0 {
		t.Fatalf("%s is empty: the fixture should have filled it", name)
	}
	for seq := ia.State.FirstSeq; seq <= ia.State.LastSeq; seq++ {
		ma, erra := sa.GetMsg(ctx, seq)
		mb, errb := sb.GetMsg(ctx, seq)
		if erra != nil || errb != nil {
			if !errors.Is(erra, jetstream.ErrMsgNotFound) || !errors.Is(errb, jetstream.ErrMsgNotFound) {
				t.Fatalf("%s seq %d: got error %v, want %v", name, seq, errb, erra)
			}
			continue
		}
		if !reflect.DeepEqual(ma, mb) {
			t.Fatalf("%s seq %d differs:\ngot  %+v\nwant %+v", name, seq, mb, ma)
		}
	}
}

func stream(t *testing.T, ctx context.Context, s *testenv.Server, name string) jetstream.Stream {
	t.Helper()
	st, err := testenv.JetStream(t, testenv.Connect(t, s)).Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st
}

func TestRestoreRefusals(t *testing.T) {
	f := newLedger(t)
	out := filepath.Join(t.TempDir(), "backup")
	m, err := create(t, f, out, false)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := copyDir(t, out)
	flipByte(t, filepath.Join(corrupt, m.Streams[len(m.Streams)-1].Archive.Name))
	noManifest := copyDir(t, out)
	if err := os.Remove(filepath.Join(noManifest, backup.ManifestName)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		target *testenv.Server
		from   string
		want   error
	}{
		{"onto the source (streams exist)", f.srv, out, backup.ErrStreamExists},
		{"one byte flipped", testenv.StartServer(t, ""), corrupt, backup.ErrChecksum},
		{"no manifest", testenv.StartServer(t, ""), noManifest, backup.ErrNoManifest},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := restore(t, c.target, c.from); !errors.Is(err, c.want) {
				t.Fatalf("restore: got %v, want %v", err, c.want)
			}
			if c.target == f.srv {
				return
			}
			// Refused before anything was sent: the target has no stream.
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			names := testenv.JetStream(t, testenv.Connect(t, c.target)).StreamNames(ctx)
			for n := range names.Name() {
				t.Errorf("stream %s created by a refused restore", n)
			}
		})
	}
}

func TestBackupOutputDirectory(t *testing.T) {
	f := newLedger(t)
	root := t.TempDir()
	out := filepath.Join(root, "backup")
	if _, err := create(t, f, out, false); err != nil {
		t.Fatal(err)
	}
	if _, err := create(t, f, out, false); !errors.Is(err, backup.ErrOutNotEmpty) {
		t.Errorf("backup over a finished backup without force: got %v, want %v", err, backup.ErrOutNotEmpty)
	}
	if _, err := create(t, f, out, true); err != nil {
		t.Errorf("backup over a finished backup with force: %v", err)
	}
	other := filepath.Join(root, "other")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := create(t, f, other, true); !errors.Is(err, backup.ErrOutNotEmpty) {
		t.Errorf("backup into a directory that is not a backup, with force: got %v, want %v", err, backup.ErrOutNotEmpty)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("%s holds %d entries, want 2 (no staging directory left behind)", root, len(entries))
	}
}

func TestPublicKeys(t *testing.T) {
	f := newLedger(t)
	root := t.TempDir()
	pub := filepath.Join(root, "signing.pub")
	if err := os.WriteFile(pub, []byte("ed25519 key-0 AAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "backup")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m, err := backup.Create(ctx, backup.Options{Conn: testenv.Connect(t, f.srv), Out: out, PublicKeys: pub})
	if err != nil {
		t.Fatal(err)
	}
	trusted := filepath.Join(root, "data", "trusted.pub")
	for i, want := range []error{nil, nil} { // a second install of the same keys is a no-op
		if had, err := backup.InstallPublicKeys(out, m, trusted); !had || !errors.Is(err, want) {
			t.Fatalf("install %d: got %v, %v; want true, %v", i, had, err, want)
		}
	}
	if b, err := os.ReadFile(trusted); err != nil || string(b) != "ed25519 key-0 AAAA\n" {
		t.Fatalf("trusted keys: got %q, %v", b, err)
	}
	if err := os.WriteFile(trusted, []byte("ed25519 key-9 ZZZZ\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.InstallPublicKeys(out, m, trusted); !errors.Is(err, backup.ErrPublicKeysDiffer) {
		t.Errorf("install over different keys: got %v, want %v", err, backup.ErrPublicKeysDiffer)
	}
	if b, _ := os.ReadFile(trusted); string(b) != "ed25519 key-9 ZZZZ\n" {
		t.Errorf("the existing trusted keys were overwritten: %q", b)
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// archiveBytesMin is how large the archive of TestBackupRestoreManyChunks
// must be: more than the server's window of chunks in flight, so backup
// and restore go through their flow control many times.
const archiveBytesMin = backup.WindowBytes + 4*backup.ChunkBytes

func TestBackupRestoreManyChunks(t *testing.T) {
	src := testenv.StartServer(t, "")
	nc := testenv.Connect(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	fillLog(t, ctx, nc)
	var seen []int64
	out := filepath.Join(t.TempDir(), "backup")
	m, err := backup.Create(ctx, backup.Options{Conn: nc, Out: out, Progress: func(stream string, n int64) {
		if stream != events.StreamName {
			t.Errorf("progress for stream %s, want only %s", stream, events.StreamName)
		}
		seen = append(seen, n)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Streams) != 1 || m.Streams[0].Archive.Bytes < archiveBytesMin {
		t.Fatalf("manifest streams %+v: want AGENTBILL alone, at least %d bytes", m.Streams, archiveBytesMin)
	}
	if got, want := seen[len(seen)-1], m.Streams[0].Archive.Bytes; got != want || len(seen) < archiveBytesMin/backup.ChunkBytes {
		t.Errorf("progress: %d calls ending at %d bytes; want one a chunk, ending at %d", len(seen), got, want)
	}
	dst := testenv.StartServer(t, "")
	var sent int64
	if _, err := backup.Restore(ctx, backup.RestoreOptions{Conn: testenv.Connect(t, dst), From: out,
		Progress: func(_ string, n, _ int64) { sent = n }}); err != nil {
		t.Fatal(err)
	}
	if sent != m.Streams[0].Archive.Bytes {
		t.Errorf("restore sent %d bytes, want %d", sent, m.Streams[0].Archive.Bytes)
	}
	sameMessages(t, src, dst, events.StreamName)
}
