package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/agentbill/agentbill/webhooks"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// callTimeout bounds one call a test makes; watchFor how long it lets
// `watch` run.
const (
	callTimeout = 10 * time.Second
	watchFor    = 500 * time.Millisecond
)

func TestAdminKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := embedded.AdminKeyPath(dir)
	pub, err := embedded.EnsureAdminKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		t.Fatalf("public key %q is not a user key", pub)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != embedded.AdminKeyMode {
		t.Errorf("mode %#o, want %#o", got, embedded.AdminKeyMode)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
	again, err := embedded.EnsureAdminKey(path)
	if err != nil || again != pub {
		t.Fatalf("second start: %q, %v; want the same key %q", again, err, pub)
	}
	if got, err := embedded.ReadAdminKey(path); err != nil || got != pub {
		t.Fatalf("ReadAdminKey: %q, %v; want %q", got, err, pub)
	}
	if _, err := embedded.ReadAdminKey(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}

	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.EnsureAdminKey(path); !errors.Is(err, embedded.ErrAdminKey) || !strings.Contains(err.Error(), "0640") {
		t.Errorf("group-readable file: %v, want ErrAdminKey naming the mode", err)
	}

	account, _ := nkeys.CreateAccount()
	accountSeed, _ := account.Seed()
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	for name, content := range map[string]string{
		"empty":        "",
		"garbage":      "not a seed\n",
		"public key":   userPub + "\n",
		"account seed": string(accountSeed) + "\n",
		"bad checksum": "SUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := embedded.EnsureAdminKey(p); !errors.Is(err, embedded.ErrAdminKey) {
			t.Errorf("%s: %v, want ErrAdminKey", name, err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.EnsureAdminKey(filepath.Join(dir, "adir")); !errors.Is(err, embedded.ErrAdminKey) {
		t.Errorf("directory: %v, want ErrAdminKey", err)
	}
}

// TestStartOptionsConflict: the default mode's users cannot be mixed with
// a config file's or with NoAuth.
func TestStartOptionsConflict(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	for _, o := range []embedded.Options{
		{StoreDir: t.TempDir(), NoAuth: true, AdminNKey: pub},
		{StoreDir: t.TempDir(), AdminNKey: "UNOTAKEY"},
	} {
		if s, err := embedded.Start(o); err == nil {
			s.Shutdown()
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}

// started is a default-mode server with a writer and the admin's seed file.
type started struct {
	srv       *embedded.Server
	adminSeed string
}

func start(t *testing.T) *started {
	t.Helper()
	dir := t.TempDir()
	seed := embedded.AdminKeyPath(dir)
	pub, err := embedded.EnsureAdminKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := embedded.Start(embedded.Options{StoreDir: dir, AdminNKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := srv.Connect("test-writer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w := projections.New(projections.Config{Conn: nc, Default: &ledger.DefaultBudget{Limit: events.NewUnits(100, 0), Period: ledger.PeriodMonth},
		Alerts: &projections.AlertConfig{}}) // as serve: watch reads the alert stream
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(callTimeout)
	for !w.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("writer not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &started{srv: srv, adminSeed: seed}
}

func (s *started) admin(t *testing.T) *testenv.Watched {
	t.Helper()
	return testenv.ConnectWatched(t, func(opts ...nats.Option) (*nats.Conn, error) {
		return (client.Credentials{NKeyFile: s.adminSeed, InboxPrefix: embedded.AdminInboxPrefix}).
			Connect("", append(opts, nats.InProcessServer(s.srv), nats.Name("test-admin"))...)
	})
}

// TestAdminRights runs, as the local admin, everything `agentbill keys`,
// `webhooks`, `audit`, `replay`, `watch` and a read-only backup do, and checks the
// server reported no permission violation: the admin's subject lists in
// permissions.go are exactly sufficient.
func TestAdminRights(t *testing.T) {
	s := start(t)
	a := s.admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := client.New(a.NC, client.WithTimeout(callTimeout))
	lim := events.NewUnits(50, 0)
	if _, err := c.SetBudget(ctx, "user_123", ledger.BudgetRequest{Limit: &lim, Period: "month"}); err != nil {
		t.Fatalf("budget set: %v", err)
	}
	a.NoViolations(t, "requests")

	// agentbill keys create, list, revoke; the bucket does not exist yet.
	store, err := keys.Open(ctx, a.NC, keys.Options{})
	if err != nil {
		t.Fatalf("keys open: %v", err)
	}
	_, k, err := store.Create(ctx, keys.RoleAdmin, "", "test")
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	if list, err := store.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("keys list: %v, %v", list, err)
	}
	if _, err := store.Revoke(ctx, k.ID); err != nil {
		t.Fatalf("keys revoke: %v", err)
	}
	a.NoViolations(t, "keys")

	// agentbill webhooks add, list, resume, test, remove; the bucket does
	// not exist yet, the alert stream does (serve's leader makes it).
	svc, err := s.srv.Connect("test-alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := projections.EnsureAlertStream(ctx, testenv.JetStream(t, svc), 1, projections.AlertConfig{}); err != nil {
		t.Fatal(err)
	}
	reg, err := webhooks.OpenRegistry(ctx, a.NC, webhooks.Options{})
	if err != nil {
		t.Fatalf("webhooks open: %v", err)
	}
	ep, err := reg.Add(ctx, webhooks.AddRequest{URL: "http://127.0.0.1:9/hook", AllowPrivate: true, CustomerID: "user_123",
		Types: []events.Type{events.TypeDenied, events.TypeBudgetExhausted}})
	if err != nil {
		t.Fatalf("webhooks add: %v", err)
	}
	if list, err := reg.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("webhooks list: %v, %v", list, err)
	}
	if _, err := reg.Pending(ctx, ep.ID); err != nil {
		t.Fatalf("webhooks list (pending): %v", err)
	}
	if _, err := reg.Status(ctx, ep.ID); err != nil {
		t.Fatalf("webhooks list (status): %v", err)
	}
	if _, err := reg.Resume(ctx, ep.ID); err != nil {
		t.Fatalf("webhooks resume: %v", err)
	}
	if _, _, err := reg.Get(ctx, ep.ID); err != nil { // webhooks test reads it, then sends over HTTP
		t.Fatalf("webhooks test: %v", err)
	}
	if err := reg.Remove(ctx, ep.ID); err != nil {
		t.Fatalf("webhooks remove: %v", err)
	}
	a.NoViolations(t, "webhooks")

	// audit, audit verify, replay, watch.
	js, err := jetstream.New(a.NC)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.VerifyChain(ctx, js, nil, nil); err != nil || rep.Broken != nil {
		t.Fatalf("audit verify: %+v, %v", rep, err)
	}
	if err := audit.History(ctx, js, audit.Filter{CustomerID: "user_123"}, func(audit.Row) error { return nil }); err != nil {
		t.Fatalf("audit: %v", err)
	}
	if _, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{}, nil); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if _, err := audit.VerifyState(ctx, js, c, nil, nil); err != nil {
		t.Fatalf("replay --verify: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, watchFor)
	defer wcancel()
	if err := c.Watch(wctx, "", nil, func(uint64, *events.Envelope) error { return nil }); err != nil {
		t.Fatalf("watch: %v", err)
	}
	a.NoViolations(t, "log reads")

	// A read-only backup: snapshot every stream it names.
	for _, stream := range []string{events.StreamName, "KV_" + keys.Bucket} {
		if n := snapshot(t, a.NC, stream); n == 0 {
			t.Errorf("snapshot of %s: no data", stream)
		}
	}
	// The writer has stored no snapshot yet: the server answers "not
	// found", which shows the request was let through.
	for _, subj := range []string{"$JS.API.STREAM.INFO.OBJ_AGENTBILL_SNAPSHOTS", "$JS.API.STREAM.SNAPSHOT.OBJ_AGENTBILL_SNAPSHOTS"} {
		req := []byte(`{"deliver_subject":"` + a.NC.NewRespInbox() + `"}`)
		if _, err := a.NC.Request(subj, req, callTimeout); err != nil {
			t.Errorf("%s: %v", subj, err)
		}
	}
	a.NoViolations(t, "backup")
}

// snapshot takes a JetStream snapshot of stream the way a backup does
// (deliver subject under the caller's inbox, an ack per chunk) and returns
// its size in bytes.
func snapshot(t *testing.T, nc *nats.Conn, stream string) int {
	t.Helper()
	deliver := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(map[string]any{"deliver_subject": deliver, "no_consumers": true})
	res, err := nc.Request("$JS.API.STREAM.SNAPSHOT."+stream, req, callTimeout)
	if err != nil {
		t.Fatalf("snapshot %s: %v", stream, err)
	}
	if strings.Contains(string(res.Data), `"error"`) {
		t.Fatalf("snapshot %s: %s", stream, res.Data)
	}
	n := 0
	for {
		m, err := sub.NextMsg(callTimeout)
		if err != nil {
			t.Fatalf("snapshot %s: %v after %d bytes", stream, err, n)
		}
		if len(m.Data) == 0 { // the end: no status, or 204, if it worked
			if st := m.Header.Get("Status"); st != "" && st != "204" {
				t.Fatalf("snapshot %s ended with status %q %q", stream, st, m.Header.Get("Description"))
			}
			return n
		}
		n += len(m.Data)
		if m.Reply == "" { // the last chunk asks for no ack
			continue
		}
		if err := m.Respond(nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConnectThroughLoopback: without a config file, the service's
// connections go through the server's own listener on loopback (an
// unspecified listen address included), authenticated with the service's
// nkey; with no listener, or with a config file (whose listener may take
// a password), they are in process. ConnectInProcess (the writer's log
// connection) is in process in every case, as the service.
func TestConnectThroughLoopback(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("listen: \"127.0.0.1:-1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		listen, config string
		ip             string // Connect's address as the server sees it; "" in process
	}{
		{listen: "127.0.0.1:-1", ip: "127.0.0.1"},
		{listen: "0.0.0.0:-1", ip: "127.0.0.1"},
		{listen: "", ip: ""},
		{config: conf, ip: ""},
	} {
		srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: tc.listen, ConfigFile: tc.config})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name    string
			connect func(string, ...nats.Option) (*nats.Conn, error)
			ip      string
		}{
			{"test-service", srv.Connect, tc.ip},
			{"test-service-log", srv.ConnectInProcess, ""},
		} {
			nc, err := c.connect(c.name)
			if err != nil {
				t.Fatalf("listen %q, %s: %v", tc.listen, c.name, err)
			}
			checkServiceConn(t, srv, nc, c.name, c.ip, tc.config == "")
			nc.Close()
		}
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// checkServiceConn checks that nc, named name, may publish an event (the
// service's right, not an agent's: the config file here has no
// authorization at all), comes from ip ("": in process) and, if nkey, is
// authorized as the service's nkey.
func checkServiceConn(t *testing.T, srv *embedded.Server, nc *nats.Conn, name, ip string, nkey bool) {
	t.Helper()
	sub, err := nc.SubscribeSync(events.EventSubjectPrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(events.EventSubjectPrefix+"loopback", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(callTimeout); err != nil {
		t.Errorf("%s: the service's own event: %v", name, err)
	}
	conns, err := srv.Connz(&server.ConnzOptions{Username: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range conns.Conns {
		if c.Name != name {
			continue
		}
		found = true
		if inProcess := c.Port == 0; inProcess != (ip == "") || ip != "" && c.IP != ip {
			t.Errorf("%s: the connection is from %s:%d, want %q", name, c.IP, c.Port, ip)
		}
		if nkey && !nkeys.IsValidPublicUserKey(c.AuthorizedUser) {
			t.Errorf("%s: the connection authorized as %q, not the service's nkey", name, c.AuthorizedUser)
		}
	}
	if !found {
		t.Errorf("no connection named %s in %+v", name, conns.Conns)
	}
}
