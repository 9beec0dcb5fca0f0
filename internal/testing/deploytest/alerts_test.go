package deploytest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
)

// subscribeFor runs the durable subscription name for d and returns what
// it delivered.
func subscribeFor(t *testing.T, c *client.Client, name string, d time.Duration) []client.Alert {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got []client.Alert
	err := c.Subscribe(ctx, name, client.SubscribeOptions{Types: []events.Type{events.TypeBudgetExhausted}},
		func(a client.Alert) error { got = append(got, a); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestDurableConsumerMissesNoAlertAcrossAKill: a durable consumer that
// stopped while three customers ran dry receives exactly those three
// budget_exhausted events when it comes back, and a fourth whose commit
// was acknowledged just before serve was killed with SIGKILL, before it
// published the alert: the restarted service publishes it from the log
// before it serves. No alert arrives twice.
func TestDurableConsumerMissesNoAlertAcrossAKill(t *testing.T) {
	s, nc := serviceOnPlainNATS(t)
	c := client.New(nc, client.WithTimeout(attemptTimeout), client.WithAttempts(1))
	if got := subscribeFor(t, c, "billing", 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("a new durable consumer got %d alerts", len(got))
	}
	for i := range 4 {
		s.must(t, 0, "budget", "set", "--customer", fmt.Sprintf("dry_%d", i), "--limit", "10", "--period", "month")
	}
	for i := range 3 {
		s.must(t, 0, "preflight", "--customer", fmt.Sprintf("dry_%d", i), "--agent", "a", "--units", "10")
	}
	s.stop()

	// Armed to kill itself after the next commit holding alerts is
	// acknowledged, before the alerts are published.
	k := startArmed(t, s, projections.FaultAfterAckBeforeAlerts)
	requestUntilKilled(t, k, nc, events.RequestSubject(events.OpPreflight, "dry_3"),
		[]byte(`{"agent_id":"a","estimated_units":10,"idempotency_key":"0192b1f4-0000-7000-8000-00000000d3d3"}`))
	exhausted := 0
	for _, e := range streamEventsAt(t, nc) {
		if e.Type == events.TypeBudgetExhausted {
			exhausted++
		}
	}
	if exhausted != 4 {
		t.Fatalf("%d budget_exhausted events in the log, want 4 (the fourth acknowledged before the kill)", exhausted)
	}

	r := startIntegrityService(t, s.url, s.data)
	got := subscribeFor(t, c, "billing", 2*time.Second)
	seen := map[string]bool{}
	var customers []string
	for _, a := range got {
		if seen[a.Event.ID] {
			t.Errorf("alert %s delivered twice", a.Event.ID)
		}
		seen[a.Event.ID] = true
		customers = append(customers, a.Event.CustomerID)
	}
	if fmt.Sprint(customers) != "[dry_0 dry_1 dry_2 dry_3]" {
		t.Errorf("the durable consumer got %v, want [dry_0 dry_1 dry_2 dry_3] once each, in order", customers)
	}
	if !strings.Contains(r.log.String(), "alerts caught up from the log") {
		t.Errorf("the restarted service did not say it caught up:\n%s", r.log)
	}
}

// serviceOnPlainNATS starts a nats-server and serve on it (skipping the
// test with -short), and returns serve and a connection of the test's own.
func serviceOnPlainNATS(t *testing.T) (*integrityService, *nats.Conn) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts nats-server and agentbill subprocesses; skipped with -short")
	}
	n := plainNATS(t)
	s := startIntegrityService(t, n.url, filepath.Join(t.TempDir(), "data"))
	nc, err := nats.Connect(n.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return s, nc
}

// serveFaultEnv names the fault point at which serve kills itself
// (cmd/agentbill's EnvFault).
const serveFaultEnv = "AGENTBILL_FAULT"

// startArmed starts serve as s was started (s stopped), armed to kill
// itself with SIGKILL the first time its writer passes the fault point.
func startArmed(t *testing.T, s *integrityService, point string) *integrityService {
	t.Helper()
	k := &integrityService{bin: s.bin, url: s.url, data: s.data, http: s.http, log: &testenv.SyncBuffer{}}
	k.cmd = k.serveCommand()
	k.cmd.Env = append(k.cmd.Environ(), serveFaultEnv+"="+point)
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.stop)
	deadline := time.Now().Add(writerReadyTimeout)
	for !strings.Contains(k.log.String(), "writer serving") {
		if time.Now().After(deadline) {
			t.Fatalf("armed serve did not start:\n%s", k.log)
		}
		time.Sleep(pollInterval)
	}
	return k
}

// requestUntilKilled sends the request (the same body, so one effect)
// again until the armed service k dies: a first attempt lost in its
// start-up must not leave the test waiting for a commit that never comes.
// It fails the test unless k was killed.
func requestUntilKilled(t *testing.T, k *integrityService, nc *nats.Conn, subject string, body []byte) {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- k.cmd.Wait() }()
	deadline := time.Now().Add(writerReadyTimeout)
	var werr error
	for waiting := true; waiting; {
		_, _ = nc.Request(subject, body, attemptTimeout)
		select {
		case werr = <-exited:
			waiting = false
		case <-time.After(pollInterval):
			if time.Now().After(deadline) {
				_ = k.cmd.Process.Kill()
				<-exited
				t.Fatalf("armed serve did not kill itself within %s of its request:\n%s", writerReadyTimeout, k.log)
			}
		}
	}
	if werr == nil || !strings.Contains(werr.Error(), "killed") {
		t.Fatalf("armed serve exited with %v, want killed:\n%s", werr, k.log)
	}
}

// TestDecisionAcknowledgedButUnansweredAcrossAKill: serve is killed after
// a preflight's commit is acknowledged and before its reply is sent (the
// writer answers after sending the next commit). The decision is in the
// log; the client's retry with the same idempotency key, to the restarted
// service, gets that same reservation, and the budget holds it once.
func TestDecisionAcknowledgedButUnansweredAcrossAKill(t *testing.T) {
	s, nc := serviceOnPlainNATS(t)
	s.must(t, 0, "budget", "set", "--customer", "acked", "--limit", "100", "--period", "month")
	s.stop()

	k := startArmed(t, s, projections.FaultAfterAckBeforeSend)
	const key = "0192b1f4-0000-7000-8000-00000000a0a0"
	requestUntilKilled(t, k, nc, events.RequestSubject(events.OpPreflight, "acked"),
		[]byte(`{"agent_id":"a","estimated_units":10,"idempotency_key":"`+key+`"}`))
	var reserved []string
	for _, e := range streamEventsAt(t, nc) {
		if r, ok := e.Data.(*events.Reserved); ok && e.CustomerID == "acked" {
			reserved = append(reserved, r.ReservationID)
		}
	}
	if len(reserved) != 1 {
		t.Fatalf("%d reservations in the log, want the one acknowledged before the kill:\n%s", len(reserved), k.log)
	}

	startIntegrityService(t, s.url, s.data)
	c := client.New(nc, client.WithTimeout(attemptTimeout))
	ctx := context.Background()
	pf, err := c.Preflight(ctx, "acked", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "10"), IdempotencyKey: key})
	if err != nil || !pf.Approved || pf.ReservationID != reserved[0] {
		t.Fatalf("the retry got %+v, %v; want the approval of reservation %s", pf, err, reserved[0])
	}
	st, err := c.Status(ctx, "acked")
	if err != nil {
		t.Fatal(err)
	}
	if st.Reserved.String() != "10" {
		t.Errorf("reserved %s after the retry, want 10 (one hold)", st.Reserved)
	}
}

// streamEventsAt returns every event in the log.
func streamEventsAt(t *testing.T, nc *nats.Conn) []*events.Envelope {
	t.Helper()
	return testenv.StreamEvents(t, nc)
}
