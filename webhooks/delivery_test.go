package webhooks_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/projections"
	"github.com/agentbill/agentbill/webhooks"
)

// TestRetriedUntilAcceptedOnce: a receiver that answers 500 twice and
// then 200 gets each event accepted exactly once, in order, signed.
func TestRetriedUntilAcceptedOnce(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, 500, 500)
	ep := e.add(t, r.url())
	r.secret = ep.Secret
	e.deliver(t, fastSchedule, nil)
	e.deny(t, 5)
	r.waitAccepted(t, len(e.alertIDs(t)))
	r.checkExactlyOnce(t, nil, e.alertIDs(t))
	if _, reqs := r.accepted(); reqs != len(e.alertIDs(t))+2 {
		t.Errorf("%d requests, want two 500s and %d accepted", reqs, len(e.alertIDs(t)))
	}
	st := waitStatus(t, e, ep.ID, func(s *webhooks.Status) bool { return s.LastSuccessAt != nil && s.FailingSince == nil })
	if !strings.Contains(st.LastError, "HTTP 500") {
		t.Errorf("last error %q, want the 500", st.LastError)
	}
	waitPending(t, e, ep.ID, 0)
}

// TestReceiverDownThenBack: a receiver that is down (connection refused)
// while events happen gets every one of them, in order, once it is back
// on the same address. "Down for a minute" is scaled to 3 s here; the
// schedule's cap (400 ms) bounds how soon after its return it hears.
func TestReceiverDownThenBack(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	ep := e.add(t, r.url())
	r.secret = ep.Secret
	e.deliver(t, fastSchedule, nil)
	e.deny(t, 2)
	r.waitAccepted(t, len(e.alertIDs(t)))
	r.stop()
	e.deny(t, 10)
	time.Sleep(3 * time.Second)
	if ids, _ := r.accepted(); len(ids) != len(e.alertIDs(t))-10 {
		t.Fatalf("accepted %d while down", len(ids))
	}
	st := waitStatus(t, e, ep.ID, func(s *webhooks.Status) bool { return s.FailingSince != nil })
	if !strings.Contains(st.LastError, "refused") {
		t.Errorf("last error %q, want connection refused", st.LastError)
	}
	back := time.Now()
	r.listen(t, r.addr)
	r.waitAccepted(t, len(e.alertIDs(t)))
	if d := time.Since(back); d > time.Second+2*fastSchedule.Max {
		t.Errorf("took %s after the receiver returned", d)
	}
	r.checkExactlyOnce(t, nil, e.alertIDs(t))
}

// TestGoneDisables: a 410 disables the endpoint; the event waits for
// resume and is then delivered first.
func TestGoneDisables(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, 410)
	ep := e.add(t, r.url())
	e.deliver(t, fastSchedule, nil)
	e.deny(t, 2)
	waitState(t, e, ep.ID, webhooks.StateDisabled)
	time.Sleep(2 * fastSchedule.Max)
	if _, reqs := r.accepted(); reqs != 1 {
		t.Fatalf("%d requests after a 410, want 1", reqs)
	}
	if _, err := e.reg.Resume(context.Background(), ep.ID); err != nil {
		t.Fatal(err)
	}
	r.waitAccepted(t, len(e.alertIDs(t)))
	r.checkExactlyOnce(t, nil, e.alertIDs(t))
}

// TestParkedAfterRetryWindow: failing for longer than MaxAge parks the
// endpoint; resume delivers what waited.
func TestParkedAfterRetryWindow(t *testing.T) {
	e := newEnv(t)
	var fail atomic.Bool
	fail.Store(true)
	r := newReceiver(t, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
	ep := e.add(t, r.url())
	sched := fastSchedule
	sched.MaxAge = 500 * time.Millisecond
	e.deliver(t, sched, nil)
	e.deny(t, 3)
	got := waitState(t, e, ep.ID, webhooks.StateParked)
	if !strings.Contains(got.StateReason, "HTTP 500") {
		t.Errorf("reason %q", got.StateReason)
	}
	_, before := r.accepted()
	time.Sleep(3 * sched.Max)
	if _, after := r.accepted(); after != before {
		t.Fatalf("%d requests while parked", after-before)
	}
	if n, err := e.reg.Pending(context.Background(), ep.ID); err != nil || n != uint64(len(e.alertIDs(t))) {
		t.Fatalf("pending %d, %v; want %d", n, err, len(e.alertIDs(t)))
	}
	r.mu.Lock()
	r.plan = nil // the receiver is fixed
	r.mu.Unlock()
	if _, err := e.reg.Resume(context.Background(), ep.ID); err != nil {
		t.Fatal(err)
	}
	r.waitAccepted(t, len(e.alertIDs(t)))
	r.checkExactlyOnce(t, nil, e.alertIDs(t))
}

// TestFailover: the delivery follows leadership; the durable consumer
// carries the position, so nothing is lost or repeated.
func TestFailover(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	ep := e.add(t, r.url())
	r.secret = ep.Secret
	var aLeads, bLeads atomic.Bool
	aLeads.Store(true)
	e.deliver(t, fastSchedule, aLeads.Load)
	e.deliver(t, fastSchedule, bLeads.Load)
	e.deny(t, 3)
	r.waitAccepted(t, len(e.alertIDs(t)))
	aLeads.Store(false)
	e.deny(t, 3) // while nobody leads: kept by the consumer
	time.Sleep(webhooks.LeaderPoll + webhooks.FetchWait)
	bLeads.Store(true)
	r.waitAccepted(t, len(e.alertIDs(t)))
	r.checkExactlyOnce(t, nil, e.alertIDs(t))
}

// TestRemove deletes the record and the consumer.
func TestRemove(t *testing.T) {
	e := newEnv(t)
	ep := e.add(t, "http://127.0.0.1:9/")
	if _, err := e.reg.Pending(context.Background(), ep.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Remove(context.Background(), ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Pending(context.Background(), ep.ID); err == nil {
		t.Error("the consumer outlived its endpoint")
	}
	if list, err := e.reg.List(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("list: %v, %v", list, err)
	}
	if err := e.reg.Remove(context.Background(), ep.ID); !errorsIs(err, webhooks.ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
}

func waitStatus(t *testing.T, e *env, id string, ok func(*webhooks.Status) bool) *webhooks.Status {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		st, err := e.reg.Status(context.Background(), id)
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v, %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitState(t *testing.T, e *env, id string, s webhooks.State) *webhooks.Endpoint {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ep, _, err := e.reg.Get(context.Background(), id)
		if err == nil && ep.State == s {
			return ep
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint %+v, %v; want state %s", ep, err, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitPending(t *testing.T, e *env, id string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		n, err := e.reg.Pending(context.Background(), id)
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending %d, %v; want %d", n, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A worker whose start failed (here: the webhook stream was gone when the
// leader began) is started again once it can be: deliveries resume without
// any change to the endpoint's record.
func TestStartRetriedAfterAFailure(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	ep := e.add(t, r.url())
	r.secret = ep.Secret
	js := testenv.JetStream(t, e.nc)
	ctx := context.Background()
	if err := js.DeleteStream(ctx, projections.WebhookStream); err != nil {
		t.Fatal(err)
	}
	e.deliver(t, fastSchedule, nil)
	time.Sleep(200 * time.Millisecond) // the start has failed by now
	if _, err := projections.EnsureAlertStream(ctx, js, 1, projections.AlertConfig{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(webhooks.ReconcileInterval + waitFor)
	for {
		if _, err := js.Consumer(ctx, projections.WebhookStream, webhooks.ConsumerName(ep.ID)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the endpoint's worker was never started again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.deny(t, 3)
	r.waitAccepted(t, 3)
}
