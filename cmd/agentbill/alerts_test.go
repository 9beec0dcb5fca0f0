package main_test

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// storedAlertIDs returns the IDs of the alerts in AGENTBILL_EVENTS, read
// as an anonymous client (an agent may read the alert stream).
func storedAlertIDs(t *testing.T, url string) []string {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := testenv.JetStream(t, nc)
	ctx := context.Background()
	st, err := js.Stream(ctx, events.AlertStreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for s := info.State.FirstSeq; info.State.Msgs > 0 && s <= info.State.LastSeq; s++ {
		m, err := st.GetMsg(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	return ids
}

// `agentbill alerts rebuild` makes the alert stream again from the log,
// offline on serve's data directory: the same alerts, once each, and a
// serve started afterwards publishes none of them again.
func TestAlertsRebuild(t *testing.T) {
	dir := t.TempDir()
	s := serve(t, dir, testenv.FreePort(t))
	for _, c := range []string{"a_1", "a_2"} {
		s.must(t, 0, "budget", "set", "--customer", c, "--limit", "10", "--period", "month")
		s.must(t, 0, "preflight", "--customer", c, "--agent", "x", "--units", "10")
	}
	s.must(t, 0, "topup", "--customer", "a_1", "--units", "5")
	before := storedAlertIDs(t, s.url)
	if len(before) != 3 {
		t.Fatalf("%d alerts stored, want 3 (two exhausted, one restored)", len(before))
	}
	s.stop(t)
	// Lose the stream (it is derived: nothing else is lost).
	srv, err := embedded.Start(embedded.Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.JetStream(t, nc).DeleteStream(context.Background(), events.AlertStreamName); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()

	out := s.must(t, 0, "alerts", "rebuild", "--data", dir)
	if !strings.Contains(out, "3 alerts") {
		t.Errorf("alerts rebuild: %s", out)
	}
	r := serve(t, dir, testenv.FreePort(t))
	r.must(t, 0, "status", "--customer", "a_1")
	after := storedAlertIDs(t, r.url)
	sort.Strings(before)
	sort.Strings(after)
	if strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("after the rebuild and a restart the stream holds %v, want %v", after, before)
	}
}
