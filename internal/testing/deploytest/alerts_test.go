package deploytest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
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
	if testing.Short() {
		t.Skip("starts nats-server and agentbill subprocesses; skipped with -short")
	}
	n := plainNATS(t)
	data := filepath.Join(t.TempDir(), "data")
	s := startIntegrityService(t, n.url, data)
	nc, err := nats.Connect(n.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
	k := &integrityService{bin: s.bin, url: n.url, data: data, http: s.http, log: &testenv.SyncBuffer{}}
	k.cmd = exec.Command(k.bin, "serve", "--nats-url", n.url, "--data", data, "--http", k.http, "--default-budget", "none")
	k.cmd.Env = append(k.cmd.Environ(), "AGENTBILL_FAULT="+projections.FaultAfterAckBeforeAlerts)
	k.cmd.Stderr = k.log
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
	// The preflight is sent again (same key: one effect) until the armed
	// service dies: a first attempt lost in its start-up must not leave
	// this test waiting for a commit that never comes.
	exited := make(chan error, 1)
	go func() { exited <- k.cmd.Wait() }()
	body := []byte(`{"agent_id":"a","estimated_units":10,"idempotency_key":"0192b1f4-0000-7000-8000-00000000d3d3"}`)
	deadline = time.Now().Add(writerReadyTimeout)
	var werr error
	for waiting := true; waiting; {
		_, _ = nc.Request(events.RequestSubject(events.OpPreflight, "dry_3"), body, attemptTimeout)
		select {
		case werr = <-exited:
			waiting = false
		case <-time.After(pollInterval):
			if time.Now().After(deadline) {
				_ = k.cmd.Process.Kill()
				<-exited
				t.Fatalf("armed serve did not kill itself within %s of its preflight:\n%s", writerReadyTimeout, k.log)
			}
		}
	}
	if werr == nil || !strings.Contains(werr.Error(), "killed") {
		t.Fatalf("armed serve exited with %v, want killed:\n%s", werr, k.log)
	}
	exhausted := 0
	for _, e := range streamEventsAt(t, nc) {
		if e.Type == events.TypeBudgetExhausted {
			exhausted++
		}
	}
	if exhausted != 4 {
		t.Fatalf("%d budget_exhausted events in the log, want 4 (the fourth acknowledged before the kill)", exhausted)
	}

	r := startIntegrityService(t, n.url, data)
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

// streamEventsAt returns every event in the log.
func streamEventsAt(t *testing.T, nc *nats.Conn) []*events.Envelope {
	t.Helper()
	return testenv.StreamEvents(t, nc)
}
