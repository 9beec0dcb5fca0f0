package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// attack is one message a client without the right must not get through.
type attack struct {
	subject string
	data    string
}

// destructive are attacks no client but the service may make, the local
// admin included: destroy or rewrite the log, forge commits or alerts,
// take the writer's lease, plant a snapshot, destroy the buckets, create
// streams.
func destructive(t *testing.T, js jetstream.JetStream) []attack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.DenyDelete, cfg.DenyPurge = false, false
	update, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	forged := `{"v":1,"id":"forged","writer":"0","at":"2026-01-01T00:00:00Z","events":[]}`
	return []attack{
		{"$JS.API.STREAM.DELETE.AGENTBILL", ""},
		{"$JS.API.STREAM.PURGE.AGENTBILL", ""},
		{"$JS.API.STREAM.UPDATE.AGENTBILL", string(update)},
		{"$JS.API.STREAM.MSG.DELETE.AGENTBILL", `{"seq":1}`},
		{"$JS.API.STREAM.CREATE.EVIL", `{"name":"EVIL","subjects":["evil.>"]}`},
		{events.LogSubject("0"), forged},
		{events.EventSubject("user_123", events.TypeBudgetExhausted), `{"spoofed":true}`},
		{"$KV.AGENTBILL_LEASES." + "writer.0", `{"holder":"evil"}`},
		{"$O.AGENTBILL_SNAPSHOTS.M.evil", `{"spoofed":true}`},
		{"$JS.API.STREAM.DELETE.KV_AGENTBILL_KEYS", ""},
		{"$JS.API.STREAM.PURGE.KV_AGENTBILL_KEYS", ""},
		{"$JS.API.STREAM.DELETE.KV_AGENTBILL_LEASES", ""},
		{"$JS.API.STREAM.DELETE.OBJ_AGENTBILL_SNAPSHOTS", ""},
	}
}

// agentForbidden are further attacks only the anonymous client may not
// make: admin requests, reading the log, the key bucket.
func agentForbidden() []attack {
	return []attack{
		{"agentbill.admin.v1.topup.user_123", `{"units":1000000}`},
		{"agentbill.admin.v1.grant.user_123", `{"units":1000000}`},
		{"agentbill.admin.v1.budget.user_123", `{"limit":1000000,"period":"month"}`},
		{"$JS.API.INFO", ""},
		{"$JS.API.STREAM.INFO.AGENTBILL", ""},
		{"$JS.API.CONSUMER.CREATE.AGENTBILL.x", ""},
		{"$JS.API.STREAM.INFO.KV_AGENTBILL_KEYS", ""},
		{"$JS.API.DIRECT.GET.KV_AGENTBILL_KEYS.$KV.AGENTBILL_KEYS.x", ""},
		{"$KV.AGENTBILL_KEYS.0123456789abcdef", `{"role":"admin"}`},
		{"$JS.API.STREAM.SNAPSHOT.AGENTBILL", ""},
		// Webhook deliveries' consumers: an agent reads the alert stream,
		// never the webhook stream where they live.
		{"$JS.API.STREAM.INFO.AGENTBILL_WEBHOOK_EVENTS", ""},
		{"$JS.API.CONSUMER.MSG.NEXT.AGENTBILL_WEBHOOK_EVENTS.webhook_x", `{"batch":1}`},
		{"$JS.API.CONSUMER.DELETE.AGENTBILL_WEBHOOK_EVENTS.webhook_x", ""},
		{"$JS.API.CONSUMER.CREATE.AGENTBILL_WEBHOOK_EVENTS.webhook_x", ""},
		{"$JS.ACK.AGENTBILL_WEBHOOK_EVENTS.webhook_x.1.1.1.1.1", ""},
	}
}

// ledgerState is what an attack must not change: the log and one status.
type ledgerState struct {
	lastSeq, msgs        uint64
	denyDelete, denyPurg bool
	status               string
	keys                 string
}

// observe reads the state as the local admin.
func observe(t *testing.T, s *service, js jetstream.JetStream, c *client.Client) ledgerState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatalf("the log: %v", err)
	}
	info := st.CachedInfo()
	if _, err := st.GetMsg(ctx, 1); err != nil {
		t.Errorf("message 1 of the log: %v", err)
	}
	reply, err := c.Status(ctx, "user_123")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	b, _ := json.Marshal(reply)
	return ledgerState{lastSeq: info.State.LastSeq, msgs: info.State.Msgs,
		denyDelete: info.Config.DenyDelete, denyPurg: info.Config.DenyPurge,
		status: string(b), keys: s.must(t, 0, "keys", "list", "--json")}
}

// TestDefaultModeAttacks runs `agentbill serve` as the README does (no
// config) and attacks it over TCP, first with no credential (anyone on
// the port), then as the local admin. Every attack must be refused by NATS
// and change nothing, while anonymous agents still work.
func TestDefaultModeAttacks(t *testing.T) {
	s := serve(t, t.TempDir(), testenv.FreePort(t))
	s.must(t, 0, "budget", "set", "--customer", "user_123", "--limit", "100", "--period", "month")
	s.must(t, 0, "preflight", "--customer", "user_123", "--agent", "a", "--units", "60")
	s.must(t, 0, "keys", "create", "--role", "agent")
	admin := testenv.ConnectWatched(t, func(opts ...nats.Option) (*nats.Conn, error) {
		return client.Credentials{NKeyFile: embedded.AdminKeyPath(s.data), InboxPrefix: embedded.AdminInboxPrefix}.
			Connect(s.url, append(opts, nats.Name("attacker-admin"))...)
	})
	adminJS := testenv.JetStream(t, admin.NC)
	adminClient := client.New(admin.NC, client.WithTimeout(ProcessTimeout))
	before := observe(t, s, adminJS, adminClient)
	if !before.denyDelete || !before.denyPurg {
		t.Fatalf("the log is created without DenyDelete and DenyPurge: %+v", before)
	}
	anon := testenv.ConnectWatched(t, func(opts ...nats.Option) (*nats.Conn, error) {
		return nats.Connect(s.url, append(opts, nats.Name("attacker"))...)
	})
	// An anonymous listener for alerts: it must see the real ones only.
	alerts, err := anon.NC.SubscribeSync(events.EventFilter("", ""))
	if err != nil {
		t.Fatal(err)
	}
	anon.NoViolations(t, "anonymous subscription to the alerts")
	attacks := destructive(t, adminJS)

	t.Run("anonymous", func(t *testing.T) {
		for _, a := range append(attacks, agentForbidden()...) {
			anon.WantDenied(t, a.subject, []byte(a.data))
		}
		for _, subj := range []string{">", "_INBOX_service.>", "_INBOX_admin.>", "agentbill.v1.>",
			"agentbill.admin.v1.>", "agentbill.log.>", "$KV.AGENTBILL_KEYS.>", "$JS.API.>"} {
			anon.WantSubDenied(t, subj)
		}
		// The CLI with no credential (no data directory) is refused too.
		out, code := s.cliAnonymous(t, "topup", "--customer", "user_123", "--units", "1000")
		if code != 1 || !strings.Contains(out, "permission_denied") {
			t.Errorf("anonymous topup: exit %d, want 1 and permission_denied:\n%s", code, out)
		}
	})
	t.Run("admin", func(t *testing.T) {
		for _, a := range attacks {
			admin.WantDenied(t, a.subject, []byte(a.data))
		}
		for _, subj := range []string{">", "_INBOX.>", "_INBOX_service.>", "agentbill.v1.>", "agentbill.log.>"} {
			admin.WantSubDenied(t, subj)
		}
	})
	if m, err := alerts.NextMsg(testenv.NotDeliveredWait); err == nil {
		t.Errorf("the alert listener received %s: %s", m.Subject, m.Data)
	}
	if after := observe(t, s, adminJS, adminClient); after != before {
		t.Errorf("the attacks changed the ledger:\n%+v\nwant\n%+v", after, before)
	}
	if out := s.must(t, 0, "audit", "verify"); !strings.Contains(out, "chain intact") {
		t.Errorf("audit verify: %s", out)
	}

	// Anonymous agents still work, and hear real alerts.
	agent := client.New(anon.NC, client.WithTimeout(ProcessTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	if st, err := agent.Status(ctx, "user_123"); err != nil || st.Reserved.String() != "60" {
		t.Fatalf("anonymous status: %+v, %v", st, err)
	}
	pf, err := agent.Preflight(ctx, "user_123", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "41")})
	if err != nil || pf.Approved || pf.Reason != ledger.ReasonBudgetExhausted {
		t.Fatalf("anonymous preflight beyond the budget: %+v, %v", pf, err)
	}
	if pf, err = agent.Preflight(ctx, "user_123", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "40")}); err != nil || !pf.Approved {
		t.Fatalf("anonymous preflight: %+v, %v", pf, err)
	}
	deadline := time.Now().Add(ProcessTimeout)
	for {
		m, err := alerts.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("the anonymous listener heard no budget_exhausted: %v", err)
		}
		e, err := events.Decode(m.Data)
		if err != nil {
			t.Fatalf("alert %s: %v: %s", m.Subject, err, m.Data)
		}
		if e.Type == events.TypeBudgetExhausted && e.CustomerID == "user_123" {
			break
		}
	}
	anon.NoViolations(t, "anonymous agent calls")
}

// cliAnonymous runs the CLI with no credential and no data directory.
func (s *service) cliAnonymous(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return s.cli(t, append(args, "--data", "")...)
}

// TestServeRefusesAnUnsafeAdminKey: serve will not start on an admin
// credential others may read, or one that is not an nkey seed, and says
// what to do; the CLI will not use one either.
func TestServeRefusesAnUnsafeAdminKey(t *testing.T) {
	for _, c := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"group-readable", "", 0o640, "mode 0640, want 0600"},
		{"not a seed", "hello\n", 0o600, "not an nkey seed"},
	} {
		dir := t.TempDir()
		path := embedded.AdminKeyPath(dir)
		content := c.content
		if content == "" {
			if _, err := embedded.EnsureAdminKey(path); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(path, []byte(content), c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "serve", "--data", dir, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
		out, err := runBounded(t, cmd)
		if err == nil || !strings.Contains(out, c.want) || !strings.Contains(out, "delete it") {
			t.Errorf("serve on a %s admin key: %v, want a failure saying %q and what to do:\n%s", c.name, err, c.want, out)
		}
		cli := exec.Command(binary, "status", "--customer", "c", "--data", dir, "--nats-url", "nats://127.0.0.1:1")
		if out, err := runBounded(t, cli); err == nil || !strings.Contains(out, c.want) {
			t.Errorf("the CLI on a %s admin key: %v, want a failure saying %q:\n%s", c.name, err, c.want, out)
		}
	}
}

// runBounded runs cmd, killing it after ProcessTimeout; it returns its
// combined output.
func runBounded(t *testing.T, cmd *exec.Cmd) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(ProcessTimeout):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("still running after %s", ProcessTimeout)
	}
}
