package audit_test

import (
	"context"
	"testing"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
)

func TestNewest(t *testing.T) {
	ctx := context.Background()
	s := testenv.StartServer(t, "")
	nc := testenv.Connect(t, s)
	sc := audit.NewScanner(testenv.JetStream(t, nc))
	all := func(*events.Envelope) bool { return true }
	if scan, err := sc.Newest(ctx, 10, all); err != nil || len(scan.Matches) != 0 || scan.LastSeq != 0 || scan.Truncated {
		t.Fatalf("no stream: %+v %v, want an empty scan", scan, err)
	}
	clock := testenv.NewClock(t0)
	testenv.StartWriter(t, s, clock, nil)
	scripted(t, testenv.Client(t, s), clock)

	denied := func(e *events.Envelope) bool {
		_, ok := e.Data.(*events.Denied)
		return ok && e.CustomerID == "user_123"
	}
	scan, err := sc.Newest(ctx, 10, denied)
	if err != nil {
		t.Fatal(err)
	}
	if len(scan.Matches) != 1 || scan.Matches[0].Seq == 0 || scan.Truncated || uint64(scan.ScannedCommits) != scan.LastSeq {
		t.Fatalf("refusals: %+v, want the one refusal, the whole log read", scan)
	}

	mine := func(e *events.Envelope) bool { return e.CustomerID == "user_123" }
	scan, err = sc.Newest(ctx, 2, mine)
	if err != nil {
		t.Fatal(err)
	}
	if len(scan.Matches) != 2 || scan.Truncated || scan.Matches[0].Seq < scan.Matches[1].Seq {
		t.Fatalf("limit 2: %+v, want 2 matches, newest first, not truncated", scan)
	}
	// The top-up restored the exhausted customer: budget_restored follows it.
	if got, want := scan.Matches[0].Event.Type, events.TypeBudgetRestored; got != want {
		t.Fatalf("newest event %q, want %q", got, want)
	}

	// Every slot held: refused at once as unavailable; then served.
	var releases []func()
	for range audit.ScansMax {
		release, err := sc.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	if _, err := sc.Newest(ctx, 1, all); ledger.ErrorCode(err) != ledger.CodeUnavailable {
		t.Fatalf("all slots held: %v, want unavailable", err)
	}
	for _, release := range releases {
		release()
	}
	if _, err := sc.Newest(ctx, 1, all); err != nil {
		t.Fatalf("slots released: %v", err)
	}
}
