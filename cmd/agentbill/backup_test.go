package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/agentbill/agentbill/signing"
)

// backupCustomers is how many customers the backup test serves.
const backupCustomers = 4

// TestBackupRestore backs a ledger up with the real binary while `serve`
// runs, restores it offline into a fresh data directory, and serves it
// again: the chain verifies, replay agrees with the live service, every
// balance is the one before, and the writer starts from the restored
// state snapshot.
func TestBackupRestore(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	snapshotLedger(t, dir)
	s := serve(t, dir, testenv.FreePort(t))
	pub, err := os.ReadFile(filepath.Join(dir, signing.PublicFile)) // serve's
	if err != nil {
		t.Fatal(err)
	}
	if out := s.must(t, 0, "status", "--customer", "snap_0"); !strings.Contains(out, "snap_0") {
		t.Fatalf("status of the customer served before serve: %s", out)
	}
	before := map[string]string{}
	for i := range backupCustomers {
		id := fmt.Sprintf("user_%d", i)
		s.must(t, 0, "budget", "set", "--customer", id, "--limit", fmt.Sprint(100+i), "--period", "month")
		s.must(t, 0, "preflight", "--customer", id, "--agent", "a", "--units", "10")
		s.must(t, 0, "record", "--customer", id, "--agent", "a", "--units", "6.5")
		s.must(t, 0, "topup", "--customer", id, "--units", "1.25")
		s.must(t, 0, "preflight", "--customer", id, "--agent", "b", "--units", "2", "--ttl", "1h") // left open
	}
	s.must(t, 0, "keys", "create", "--role", "admin", "--name", "ops")
	for _, id := range customerIDs() {
		before[id] = s.must(t, 0, "status", "--customer", id, "--json")
	}
	if !strings.Contains(before["user_0"], `"reserved":2,`) || !strings.Contains(before["user_0"], `"top_ups":1.25`) {
		t.Fatalf("status before the backup lacks the open hold or the top-up: %s", before["user_0"])
	}

	out := filepath.Join(root, "backup")
	listing := s.must(t, 0, "backup", "--out", out, "--data", dir)
	for _, want := range []string{"AGENTBILL ", "OBJ_AGENTBILL_SNAPSHOTS", "KV_AGENTBILL_KEYS", "signing.pub"} {
		if !strings.Contains(listing, want) {
			t.Errorf("backup output lacks %q:\n%s", want, listing)
		}
	}
	s.must(t, 1, "backup", "--out", out, "--data", dir) // a finished backup, no --force
	s.must(t, 0, "backup", "--out", out, "--data", dir, "--force")
	s.stop(t)

	fresh := filepath.Join(root, "restored")
	s.must(t, 2, "restore", "--data", fresh)
	s.must(t, 2, "restore", "--from", out, "--data", fresh, "--nats-url", s.url)
	if got := s.must(t, 1, "restore", "--from", out, "--data", dir); !strings.Contains(got, "already exists") {
		t.Errorf("restore over the live data directory: %s", got)
	}
	s.must(t, 0, "restore", "--from", out, "--data", fresh)
	if b, err := os.ReadFile(filepath.Join(fresh, "trusted.pub")); err != nil || string(b) != string(pub) {
		t.Errorf("trusted.pub after restore: %q, %v; want %q", b, err, pub)
	}

	r := serve(t, fresh, testenv.FreePort(t))
	if !strings.Contains(r.stderr.String(), "snapshot loaded") {
		t.Errorf("the restored service did not start from the restored snapshot:\n%s", r.stderr)
	}
	if got := r.must(t, 0, "audit", "verify"); !strings.Contains(got, "chain intact") {
		t.Errorf("audit verify after restore: %s", got)
	}
	r.must(t, 0, "replay", "--verify")
	for _, id := range customerIDs() {
		if got := r.must(t, 0, "status", "--customer", id, "--json"); got != before[id] {
			t.Errorf("status of %s after restore:\n%s\nwant\n%s", id, got, before[id])
		}
	}
}

// TestRestoreRefusesDamagedBackups: a flipped byte and a missing manifest
// are refused before the target is touched.
func TestRestoreRefusesDamagedBackups(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	s := serve(t, dir, testenv.FreePort(t))
	s.must(t, 0, "budget", "set", "--customer", "user_0", "--limit", "10", "--period", "month")
	out := filepath.Join(root, "backup")
	s.must(t, 0, "backup", "--out", out, "--data", dir)
	s.stop(t)

	corrupt := filepath.Join(root, "corrupt")
	copyTree(t, out, corrupt)
	archive := filepath.Join(corrupt, "AGENTBILL.snapshot")
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(archive, b, 0o600); err != nil {
		t.Fatal(err)
	}
	noManifest := filepath.Join(root, "nomanifest")
	copyTree(t, out, noManifest)
	if err := os.Remove(filepath.Join(noManifest, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, want string }{
		{corrupt, "backup file corrupt"},
		{noManifest, "no backup manifest"},
	} {
		target := filepath.Join(root, "target-"+filepath.Base(c.from))
		if got := s.must(t, 1, "restore", "--from", c.from, "--data", target); !strings.Contains(got, c.want) {
			t.Errorf("restore --from %s: %s; want %q", c.from, got, c.want)
		}
		if _, err := os.Stat(filepath.Join(target, "jetstream")); err == nil && c.want == "no backup manifest" {
			t.Errorf("a refused restore started a server on %s", target)
		}
	}
}

// snapshotLedger serves a customer in process on dir and stores a state
// snapshot: serve has no flag to take one, and its schedule (1,000,000
// events or 10 minutes) is too slow for a test. It signs with the key
// serve will use on dir.
func snapshotLedger(t *testing.T, dir string) {
	t.Helper()
	keys, _, err := signing.Open(filepath.Join(dir, signing.KeyFile), filepath.Join(dir, signing.TrustedFile), "")
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.StartServer(t, dir)
	w := testenv.StartWriter(t, srv, nil, nil, func(c *projections.Config) { c.Signer, c.Keys = keys.Signer, keys.Keyring })
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	c := testenv.Client(t, srv)
	for i := range 2 {
		if _, err := c.SetBudget(ctx, fmt.Sprintf("snap_%d", i), ledger.BudgetRequest{Limit: testenv.Ptr(t, "50"), Period: "month"}); err != nil {
			t.Fatal(err)
		}
	}
	snaps := &w.Stats().Snapshots
	w.SnapshotNow()
	for deadline := time.Now().Add(ProcessTimeout); snaps.Saved.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot stored within %s", ProcessTimeout)
		}
	}
	w.Stop(t)
	srv.Shutdown()
	srv.WaitForShutdown()
}

func customerIDs() []string {
	ids := []string{"snap_0", "snap_1"}
	for i := range backupCustomers {
		ids = append(ids, fmt.Sprintf("user_%d", i))
	}
	return ids
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := exec.Command("cp", "-a", src, dst).Run(); err != nil {
		t.Fatal(err)
	}
}
