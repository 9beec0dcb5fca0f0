package keys

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

// callTimeout bounds every store call in these tests.
const callTimeout = 10 * time.Second

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t *testing.T) (*Store, *testenv.Server) {
	t.Helper()
	srv := testenv.StartServer(t, "")
	s, err := Open(ctxT(t), testenv.Connect(t, srv), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s, srv
}

func TestCreateAuthenticate(t *testing.T) {
	s, _ := openStore(t)
	ctx := ctxT(t)
	secret, k, err := s.Create(ctx, RoleAgent, "user_123", "worker 1")
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != SecretLen || !strings.HasPrefix(secret, SecretPrefix) {
		t.Fatalf("secret %q: want %s and %d characters", secret, SecretPrefix, SecretLen-len(SecretPrefix))
	}
	if k.Prefix != secret[:DisplayPrefixLen] || len(k.ID) != IDLen || k.Role != RoleAgent || k.CustomerID != "user_123" {
		t.Fatalf("record %+v does not match the key", k)
	}
	got, err := s.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != k.ID || got.Role != RoleAgent || got.CustomerID != "user_123" || got.Name != "worker 1" {
		t.Fatalf("authenticated %+v, want %+v", got, k)
	}
	// Two keys are never the same.
	secret2, k2, err := s.Create(ctx, RoleAdmin, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if secret2 == secret || k2.ID == k.ID {
		t.Fatal("two keys collided")
	}
}

func TestOnlyTheHashIsStored(t *testing.T) {
	s, _ := openStore(t)
	ctx := ctxT(t)
	secret, k, err := s.Create(ctx, RoleAdmin, "", "")
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.kv.Get(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value()), secret[len(SecretPrefix):]) {
		t.Fatalf("the stored record holds the key: %s", e.Value())
	}
	hash, id := hashSecret(secret)
	if k.Hash != hash || k.ID != id {
		t.Fatalf("hash %s id %s, want %s %s", k.Hash, k.ID, hash, id)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(list)
	if strings.Contains(string(b), secret[len(SecretPrefix):]) {
		t.Fatal("List shows the key")
	}
}

func TestAuthenticateRejects(t *testing.T) {
	s, _ := openStore(t)
	ctx := ctxT(t)
	secret, _, err := s.Create(ctx, RoleAgent, "", "")
	if err != nil {
		t.Fatal(err)
	}
	// A record under a key's ID whose hash is another key's must not
	// authenticate it: IDs are 64 bits of the hash, the whole hash decides.
	tampered, k2, err := s.Create(ctx, RoleAdmin, "", "")
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := newSecret()
	rec := *k2
	rec.Hash, _ = hashSecret(forged)
	b, _ := json.Marshal(rec)
	if _, err := s.kv.Put(ctx, k2.ID, b); err != nil {
		t.Fatal(err)
	}
	unknown, _ := newSecret()
	cases := map[string]string{
		"empty":        "",
		"no prefix":    strings.TrimPrefix(secret, SecretPrefix),
		"short":        secret[:len(secret)-1],
		"long":         secret + "A",
		"bad alphabet": secret[:len(secret)-1] + "!",
		"unknown":      unknown,
		"one char off": secret[:len(secret)-1] + flip(secret[len(secret)-1]),
		"hash differs": tampered,
	}
	for name, key := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Authenticate(ctx, key); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("got %v, want ErrUnauthenticated", err)
			}
		})
	}
	if _, err := s.Authenticate(ctx, secret); err != nil {
		t.Fatalf("original key: %v", err)
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestRevokeIsImmediate(t *testing.T) {
	s, srv := openStore(t)
	ctx := ctxT(t)
	secret, k, err := s.Create(ctx, RoleAgent, "c1", "")
	if err != nil {
		t.Fatal(err)
	}
	// A second store on another connection, like a gateway beside the CLI.
	other, err := Open(ctx, testenv.Connect(t, srv), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	rk, err := s.Revoke(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !rk.Revoked || rk.RevokedAt == nil {
		t.Fatalf("revoked record %+v", rk)
	}
	if _, err := other.Authenticate(ctx, secret); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("after revoke: %v, want a revoked error", err)
	}
	again, err := s.Revoke(ctx, k.ID)
	if err != nil || !again.RevokedAt.Equal(*rk.RevokedAt) {
		t.Fatalf("second revoke: %+v %v; want the first revocation unchanged", again, err)
	}
	if _, err := s.Revoke(ctx, "0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown ID: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "xyz", "0123456789ABCDEF", "0123456789abcdef0", "../../etc"} {
		if _, err := s.Revoke(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ID %q: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestCreateValidates(t *testing.T) {
	s, _ := openStore(t)
	ctx := ctxT(t)
	cases := []struct {
		role           Role
		customer, name string
	}{
		{"root", "", ""},
		{"", "", ""},
		{RoleAgent, strings.Repeat("x", 129), ""},
		{RoleAgent, "bad\x00id", ""},
		{RoleAgent, "", strings.Repeat("n", NameBytesMax+1)},
	}
	for _, c := range cases {
		if _, _, err := s.Create(ctx, c.role, c.customer, c.name); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create(%q, %q, %q): %v, want ErrInvalid", c.role, c.customer, c.name, err)
		}
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("after invalid creates: %d keys, %v; want none", len(list), err)
	}
}

func TestListOrderAndContents(t *testing.T) {
	s, _ := openStore(t)
	ctx := ctxT(t)
	clock := testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s.now = clock.Now
	var ids []string
	for _, r := range []Role{RoleAuditor, RoleAgent, RoleAdmin} {
		_, k, err := s.Create(ctx, r, "", string(r)+" key")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
		clock.Advance(time.Second)
	}
	if _, err := s.Revoke(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("%d keys, want 3", len(list))
	}
	for i, k := range list {
		if k.ID != ids[i] {
			t.Fatalf("key %d is %s, want %s (oldest first)", i, k.ID, ids[i])
		}
		if k.Revoked != (i == 1) {
			t.Fatalf("key %d revoked=%v", i, k.Revoked)
		}
	}
}

func TestOpenConcurrently(t *testing.T) {
	srv := testenv.StartServer(t, "")
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Open(ctx, testenv.Connect(t, srv), Options{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	js := testenv.JetStream(t, testenv.Connect(t, srv))
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil || st.History() != BucketHistory || st.BackingStore() != "JetStream" {
		t.Fatalf("bucket status %v %v", st, err)
	}
	if si := st.(*jetstream.KeyValueBucketStatus).StreamInfo(); si.Config.Storage != jetstream.FileStorage {
		t.Fatalf("bucket storage %v, want file", si.Config.Storage)
	}
}

func TestAuthenticateWithNATSDownFails(t *testing.T) {
	srv := testenv.StartServer(t, "")
	nc := testenv.Connect(t, srv)
	s, err := Open(ctxT(t), nc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := s.Create(ctxT(t), RoleAdmin, "", "")
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if _, err := s.Authenticate(ctxT(t), secret); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("with the connection closed: %v, want ErrUnavailable", err)
	}
}

func TestAuthorize(t *testing.T) {
	all := []Action{ActionSpend, ActionRead, ActionAudit, ActionAdmin}
	want := map[Role][]Action{
		RoleAgent:   {ActionSpend, ActionRead},
		RoleAuditor: {ActionRead, ActionAudit},
		RoleAdmin:   all,
	}
	for role, allowed := range want {
		for _, a := range all {
			k := &Key{ID: "k", Role: role}
			err := k.Authorize(a, "anyone")
			ok := false
			for _, b := range allowed {
				ok = ok || a == b
			}
			if (err == nil) != ok {
				t.Errorf("%s may %s: got %v, want allowed=%v", role, a, err, ok)
			}
			if err != nil && !errors.Is(err, ErrPermissionDenied) {
				t.Errorf("%s %s: %v does not wrap ErrPermissionDenied", role, a, err)
			}
		}
	}
	bound := &Key{ID: "k", Role: RoleAdmin, CustomerID: "c1"}
	if err := bound.Authorize(ActionAdmin, "c1"); err != nil {
		t.Fatalf("bound key on its customer: %v", err)
	}
	if err := bound.Authorize(ActionRead, "c2"); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("bound key on another customer: %v", err)
	}
	if _, err := ParseRole("superuser"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ParseRole: %v", err)
	}
}
