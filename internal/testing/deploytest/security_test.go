package deploytest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
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
	"github.com/nats-io/nats.go"
)

// deniedWait bounds how long a test waits for the server to report a
// permission violation (asynchronous, after a flush).
const deniedWait = 5 * time.Second

// roleConn is a connection as one of nats.conf's users that collects the
// permission violations the server reports.
type roleConn struct {
	nc     *nats.Conn
	denied chan error
}

func connectRole(t *testing.T, url, user string) *roleConn {
	t.Helper()
	rc := &roleConn{denied: make(chan error, 64)}
	onErr := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case rc.denied <- err:
		default:
		}
	})
	nc, err := testenv.NATSConfCreds(user).Connect(url, nats.Name("deploytest-"+user), onErr, nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	rc.nc = nc
	return rc
}

// wantDenied publishes on subject (with a reply inbox, as a request would)
// and waits for the server's permission violation naming it.
func (rc *roleConn) wantDenied(t *testing.T, subject string, data []byte) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data, msg.Reply = data, rc.nc.NewRespInbox()
	if err := rc.nc.PublishMsg(msg); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	rc.waitDenied(t, "publish", subject)
}

// wantSubDenied subscribes to subject and waits for the violation.
func (rc *roleConn) wantSubDenied(t *testing.T, subject string) {
	t.Helper()
	sub, err := rc.nc.SubscribeSync(subject)
	if err != nil {
		t.Fatalf("subscribe %s: %v", subject, err)
	}
	defer sub.Unsubscribe()
	rc.waitDenied(t, "subscription", subject)
}

func (rc *roleConn) waitDenied(t *testing.T, what, subject string) {
	t.Helper()
	if err := rc.nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	want := `"` + subject + `"`
	deadline := time.After(deniedWait)
	for {
		select {
		case err := <-rc.denied:
			msg := strings.ToLower(err.Error())
			if strings.Contains(msg, "permissions violation") && strings.Contains(msg, what) && strings.Contains(err.Error(), want) {
				return
			}
		case <-deadline:
			t.Fatalf("%s on %s was not denied within %s", what, subject, deniedWait)
		}
	}
}

// wantAllowed checks a JetStream API request is answered (its reply may
// be an API error, but the server let it through).
func (rc *roleConn) wantAllowed(t *testing.T, subject string) {
	t.Helper()
	if _, err := rc.nc.Request(subject, nil, 5*time.Second); err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
}

// startSecured starts the embedded server from the repo's nats.conf (only
// its port and store changed) and the writer with the service's
// credentials, over TCP.
func startSecured(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	conf := testenv.WriteNATSConf(t, filepath.Join(dir, "nats.conf"), testenv.FreePort(t), filepath.Join(dir, "store"))
	srv, err := embedded.Start(embedded.Options{ConfigFile: conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	url := srv.ClientURL()
	if nc, err := nats.Connect(url, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to the server run from nats.conf")
	}
	bad := testenv.NATSConfCreds("agent")
	bad.Password += "x"
	if nc, err := bad.Connect(url, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("the agent connected with a wrong password")
	}
	startWriter(t, url)
	return url
}

func lastSeq(t *testing.T, nc *nats.Conn) uint64 {
	t.Helper()
	js := testenv.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.LastSeq
}

// TestPermissionMatrix runs the repo's nats.conf in the embedded server and
// checks what each user may and may not do, docs/PROTOCOL.md "NATS
// permissions" and SECURITY.md "Roles in `nats.conf`".
func TestPermissionMatrix(t *testing.T) {
	url := startSecured(t)
	svc := connectRole(t, url, "service")
	admin := client.New(connectRole(t, url, "admin").nc, client.WithTimeout(attemptTimeout))
	setBudget(t, admin, "user_123", "100")
	setBudget(t, admin, "user_456", "100")
	forged := []byte(`{"v":1,"id":"forged","writer":"0","at":"2026-01-01T00:00:00Z","events":[]}`)

	// Everything an agent-level credential must never do.
	forbidden := []string{
		"agentbill.log.0",
		"agentbill.events.user_123.recorded",
		events.EventSubject("user_123", events.TypeBudgetExhausted), // a spoofed alert
		"$JS.API.INFO",
		"$JS.API.STREAM.PURGE.AGENTBILL",
		"$JS.API.STREAM.DELETE.AGENTBILL",
		"$JS.API.STREAM.MSG.DELETE.AGENTBILL",
		"$JS.API.STREAM.UPDATE.AGENTBILL",
		"$JS.API.STREAM.CREATE.EVIL",
		"$KV.AGENTBILL_KEYS.agb_forged",
		"$JS.API.STREAM.INFO.KV_AGENTBILL_KEYS",
	}
	before := lastSeq(t, svc.nc)
	// A listener for alerts (the admin may subscribe): a spoofed one must
	// never reach it.
	alerts, err := connectRole(t, url, "admin").nc.SubscribeSync("agentbill.events.>")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("agent", func(t *testing.T) {
		rc := connectRole(t, url, "agent")
		c := client.New(rc.nc, client.WithTimeout(attemptTimeout))
		if r := preflight(t, c, "user_123", "a", "10"); !r.Approved {
			t.Fatalf("agent preflight refused: %+v", r)
		}
		status(t, c, "user_456")
		for _, subj := range append(forbidden, "$JS.API.STREAM.INFO.AGENTBILL",
			"agentbill.admin.v1.budget.user_123", "agentbill.admin.v1.topup.user_123") {
			rc.wantDenied(t, subj, forged)
		}
		for _, subj := range []string{"_INBOX.>", "_INBOX_service.>", "agentbill.v1.>", "agentbill.events.>", "agentbill.log.>"} {
			rc.wantSubDenied(t, subj)
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		_, err := c.TopUp(ctx, "user_123", ledger.TopUpRequest{Units: units(t, "1000")})
		if got := ledger.ErrorCode(err); got != ledger.CodePermissionDenied {
			t.Errorf("agent topup: code %q (%v), want permission_denied", got, err)
		}
	})

	t.Run("scoped agent", func(t *testing.T) {
		rc := connectRole(t, url, "agent-user_123")
		c := client.New(rc.nc, client.WithTimeout(time.Second))
		preflight(t, c, "user_123", "a", "1")
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		start := time.Now()
		_, err := c.Status(ctx, "user_456")
		if got := ledger.ErrorCode(err); got != ledger.CodePermissionDenied {
			t.Errorf("scoped agent status of user_456: code %q (%v), want permission_denied", got, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the denial took %s: the client retried a permission error", d)
		}
		for _, subj := range []string{
			"agentbill.v1.preflight.user_456",
			"agentbill.v1.status." + events.Token("user.123"),
			"agentbill.v1.status.user_123.x",
			"agentbill.admin.v1.budget.user_123",
			"agentbill.log.0", "$JS.API.STREAM.PURGE.AGENTBILL",
		} {
			rc.wantDenied(t, subj, nil)
		}
		rc.wantSubDenied(t, "_INBOX_agent.>")
	})

	t.Run("admin", func(t *testing.T) {
		rc := connectRole(t, url, "admin")
		c := client.New(rc.nc, client.WithTimeout(attemptTimeout))
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if _, err := c.TopUp(ctx, "user_123", ledger.TopUpRequest{Units: units(t, "5")}); err != nil {
			t.Fatalf("admin topup: %v", err)
		}
		rc.wantAllowed(t, "$JS.API.STREAM.INFO.AGENTBILL")
		for _, subj := range forbidden {
			rc.wantDenied(t, subj, forged)
		}
		rc.wantSubDenied(t, "agentbill.v1.>")
	})

	t.Run("auditor", func(t *testing.T) {
		rc := connectRole(t, url, "auditor")
		js := testenv.JetStream(t, rc.nc)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		rep, err := audit.VerifyChain(ctx, js, nil, nil)
		if err != nil || rep.Broken != nil || rep.Commits == 0 {
			t.Fatalf("auditor audit verify: %+v, %v", rep, err)
		}
		rows := 0
		err = audit.History(ctx, js, audit.Filter{CustomerID: "user_123"}, func(audit.Row) error { rows++; return nil })
		if err != nil || rows == 0 {
			t.Fatalf("auditor audit: %d rows, %v", rows, err)
		}
		st, err := js.Stream(ctx, events.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetMsg(ctx, 1); err != nil {
			t.Fatalf("auditor get message 1: %v", err)
		}
		for _, subj := range append(forbidden, "agentbill.v1.status.user_123",
			"agentbill.admin.v1.budget.user_123", "$JS.API.CONSUMER.CREATE.KV_AGENTBILL_KEYS.x") {
			rc.wantDenied(t, subj, forged)
		}
		rc.wantSubDenied(t, "agentbill.events.>")
	})

	t.Run("service", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		store, err := keys.Open(ctx, svc.nc, keys.Options{})
		if err != nil {
			t.Fatalf("service opens the key store: %v", err)
		}
		if _, _, err := store.Create(ctx, keys.RoleAgent, "user_123", "deploytest"); err != nil {
			t.Fatalf("service creates a key: %v", err)
		}
		c := client.New(svc.nc, client.WithTimeout(attemptTimeout))
		status(t, c, "user_123")
	})

	// Every forgery above was dropped: the log holds only the writer's
	// commits (the budgets, the preflights and the top-up).
	if got, max := lastSeq(t, svc.nc), before+3; got > max {
		t.Errorf("log grew from %d to %d, want at most %d (the legitimate commits)", before, got, max)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	js := testenv.JetStream(t, svc.nc)
	rep, err := audit.VerifyChain(ctx, js, nil, nil)
	if err != nil || rep.Broken != nil {
		t.Errorf("chain after the attacks: %+v, %v", rep, err)
	}
	// Purge, update and message delete changed nothing either.
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := st.CachedInfo().Config; !cfg.DenyDelete || !cfg.DenyPurge {
		t.Errorf("the log lost DenyDelete (%v) or DenyPurge (%v)", cfg.DenyDelete, cfg.DenyPurge)
	}
	if _, err := st.GetMsg(ctx, 1); err != nil {
		t.Errorf("message 1 of the log: %v", err)
	}
	for {
		m, err := alerts.NextMsg(testenv.NotDeliveredWait)
		if err != nil {
			break
		}
		if strings.Contains(string(m.Data), "forged") {
			t.Errorf("a spoofed alert reached a listener: %s %s", m.Subject, m.Data)
		}
	}
}

// TestComposePassesEveryPassword checks docker-compose.yml gives the nats
// container every password nats.conf reads, and the service its own.
func TestComposePassesEveryPassword(t *testing.T) {
	conf, err := os.ReadFile(natsConfPath)
	if err != nil {
		t.Fatal(err)
	}
	compose, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?m)^\s*password:\s*\$(\w+)\s*$`).FindAllSubmatch(conf, -1)
	if len(refs) != len(testenv.NATSConfPasswordEnv) {
		t.Errorf("nats.conf reads %d passwords from the environment, want %d", len(refs), len(testenv.NATSConfPasswordEnv))
	}
	for _, m := range refs {
		if !strings.Contains(string(compose), string(m[1])+": ${"+string(m[1])+":?") {
			t.Errorf("docker-compose.yml does not pass %s to nats", m[1])
		}
	}
	for _, want := range []string{"AGENTBILL_NATS_USER: service", "AGENTBILL_NATS_PASSWORD: ${AGENTBILL_SERVICE_PASSWORD:?", "AGENTBILL_NATS_INBOX_PREFIX: _INBOX_service"} {
		if !strings.Contains(string(compose), want) {
			t.Errorf("docker-compose.yml: the agentbill service lacks %q", want)
		}
	}
}
