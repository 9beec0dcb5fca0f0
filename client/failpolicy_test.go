package client_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
)

// unavailableClient returns a client on a NATS server with no writer
// behind it (every request: no responders, so unavailable), with two quick
// attempts, its policy, and the buffer its warnings go to.
func unavailableClient(t *testing.T, opts ...client.Option) (*client.Client, *bytes.Buffer) {
	t.Helper()
	s := testenv.StartServer(t, "")
	var logs bytes.Buffer
	opts = append([]client.Option{client.WithAttempts(2), client.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))}, opts...)
	return client.New(testenv.Connect(t, s), opts...), &logs
}

func preflightReq(t *testing.T, units string) ledger.PreflightRequest {
	t.Helper()
	return ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, units)}
}

func TestDenyPolicyReturnsUnavailable(t *testing.T) {
	c, _ := unavailableClient(t) // Deny is the default
	_, err := c.Preflight(context.Background(), "u", preflightReq(t, "1"))
	if got, want := ledger.ErrorCode(err), ledger.CodeUnavailable; got != want {
		t.Fatalf("code %q (err %v), want %q", got, err, want)
	}
	if got := c.SkippedChecks(); got != 0 {
		t.Errorf("skipped %d, want 0", got)
	}
}

func TestAllowPolicyApprovesUncheckedAndWarnsOnce(t *testing.T) {
	c, logs := unavailableClient(t, client.WithOnUnavailable(client.Allow))
	const calls = 3
	for i := range calls {
		pf, err := c.Preflight(context.Background(), "u", preflightReq(t, "1"))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if !pf.Approved || !pf.Unchecked || pf.ReservationID != "" || pf.Message != client.UncheckedMessage {
			t.Fatalf("call %d: got %+v, want an unchecked approval", i, pf)
		}
	}
	if got, want := c.SkippedChecks(), int64(calls); got != want {
		t.Errorf("skipped %d, want %d", got, want)
	}
	if got, want := strings.Count(logs.String(), "budget check skipped"), 1; got != want {
		t.Errorf("%d warnings within %s, want %d:\n%s", got, client.SkippedWarnInterval, want, logs)
	}
}

func TestAllowPolicyKeepsOtherErrors(t *testing.T) {
	c, _ := unavailableClient(t, client.WithOnUnavailable(client.Allow))
	_, err := c.Preflight(context.Background(), "", preflightReq(t, "1"))
	if got, want := ledger.ErrorCode(err), ledger.CodeInvalidArgument; got != want {
		t.Fatalf("code %q (err %v), want %q", got, err, want)
	}
	if got := c.SkippedChecks(); got != 0 {
		t.Errorf("skipped %d, want 0", got)
	}
}

func TestAllowPolicyKeepsRefusals(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil)
	c := client.New(testenv.Connect(t, s), client.WithOnUnavailable(client.Allow))
	ctx := context.Background()
	if _, err := c.SetBudget(ctx, "u", ledger.BudgetRequest{Limit: testenv.Ptr(t, "5"), Period: "month"}); err != nil {
		t.Fatal(err)
	}
	pf, err := c.Preflight(ctx, "u", preflightReq(t, "10"))
	if err != nil || pf.Approved || pf.Unchecked {
		t.Fatalf("got %+v, %v; want a refusal", pf, err)
	}
	_, err = c.Gate(ctx, client.GateOptions{CustomerID: "u", AgentID: "a", EstimatedUnits: testenv.Units(t, "10")},
		func(context.Context) (events.Units, error) { t.Fatal("a refused run ran"); return events.Zero, nil })
	var refused *client.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("gate returned %v, want *RefusedError", err)
	}
}

func TestGateFollowsFailPolicy(t *testing.T) {
	opts := client.GateOptions{CustomerID: "u", AgentID: "a", EstimatedUnits: testenv.Units(t, "1")}
	run := func(ran *bool) func(context.Context) (events.Units, error) {
		return func(context.Context) (events.Units, error) { *ran = true; return testenv.Units(t, "1"), nil }
	}
	deny, _ := unavailableClient(t)
	ran := false
	if _, err := deny.Gate(context.Background(), opts, run(&ran)); ledger.ErrorCode(err) != ledger.CodeUnavailable || ran {
		t.Errorf("deny: ran=%v err=%v, want unavailable and no run", ran, err)
	}
	allow, _ := unavailableClient(t, client.WithOnUnavailable(client.Allow))
	res, err := allow.Gate(context.Background(), opts, run(&ran))
	if err != nil || !ran || !res.Unchecked || res.Record != nil {
		t.Errorf("allow: ran=%v res=%+v err=%v, want an unchecked run, nothing recorded", ran, res, err)
	}
}

func TestBadFailPolicyPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "maybe") {
			t.Errorf("recovered %v, want a panic naming the bad value", r)
		}
	}()
	client.WithOnUnavailable("maybe")
}
