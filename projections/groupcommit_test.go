package projections_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// Group commit under concurrency and failures: many clients run
// preflight+record cycles against capped budgets while a rogue connection
// keeps appending foreign commits, so the writer's fenced appends fail and
// it rebuilds mid-load. Afterwards every approval a client saw is a
// reserved event in the stream exactly once, every recorded charge is
// there exactly once, no customer was ever approved past its limit, and the
// log replays to the live state.
func TestGroupCommitUnderFailures(t *testing.T) {
	for _, inFlight := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d commits in flight", inFlight), func(t *testing.T) {
			groupCommitUnderFailures(t, inFlight)
		})
	}
}

const (
	gcClients   = 32
	gcCycles    = 40 // per client
	gcCustomers = 8
	gcLimit     = 400 // units per customer; demand is ~2x that
	gcForgeries = 6
)

func groupCommitUnderFailures(t *testing.T, inFlight int) {
	s := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, s, nil, nil, func(c *projections.Config) { c.CommitsInFlight = inFlight })
	ctx := context.Background()
	admin := testenv.Client(t, s)
	for k := range gcCustomers {
		setBudget(t, admin, "c"+strconv.Itoa(k), strconv.Itoa(gcLimit), ledger.PeriodMonth)
	}

	var (
		mu       sync.Mutex
		approved = map[string]string{} // reservation -> customer
		charged  = map[string]bool{}   // record event IDs seen by clients
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for i := range gcClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testenv.Client(t, s)
			for j := range gcCycles {
				cid := "c" + strconv.Itoa((i+j)%gcCustomers)
				pf, err := c.Preflight(ctx, cid, ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "10")})
				if err != nil {
					t.Errorf("preflight: %v", err)
					return
				}
				if !pf.Approved {
					continue
				}
				mu.Lock()
				approved[pf.ReservationID] = cid
				mu.Unlock()
				rec, err := c.Record(ctx, cid, ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "7"), ReservationID: pf.ReservationID})
				if err != nil {
					t.Errorf("record: %v", err)
					return
				}
				mu.Lock()
				charged[rec.EventID] = true
				mu.Unlock()
			}
		}()
	}
	// The rogue appender: valid commits that move the stream's sequence.
	js := testenv.JetStream(t, testenv.Connect(t, s))
	forged := 0
	for forged < gcForgeries && !stop.Load() {
		time.Sleep(15 * time.Millisecond)
		var enc events.CommitEncoder
		enc.Reset("rogue-"+strconv.Itoa(forged), "rogue", time.Now())
		body, _ := events.Encode(&events.Envelope{ID: "rogue-ev-" + strconv.Itoa(forged), Type: events.TypeToppedUp,
			V: events.Version, At: time.Now().UTC(), CustomerID: "bystander", Data: &events.ToppedUp{Units: events.NewUnits(1, 0)}})
		enc.Add(body)
		if _, err := js.Publish(ctx, events.LogSubject("rogue"), enc.Bytes()); err != nil {
			t.Fatal(err)
		}
		forged++
	}
	wg.Wait()
	stop.Store(true)
	if t.Failed() {
		return
	}

	evs := testenv.StreamEvents(t, admin.Conn())
	reservedSeen := map[string]int{}
	recordedSeen := map[string]int{}
	for _, e := range evs {
		switch d := e.Data.(type) {
		case *events.Reserved:
			reservedSeen[d.ReservationID]++
		case *events.Recorded:
			recordedSeen[e.ID]++
		}
	}
	for id, cid := range approved {
		if reservedSeen[id] != 1 {
			t.Errorf("approved reservation %s (%s) is in the stream %d times, want exactly 1", id, cid, reservedSeen[id])
		}
	}
	for id := range charged {
		if recordedSeen[id] != 1 {
			t.Errorf("recorded event %s a client was told about is in the stream %d times, want 1", id, recordedSeen[id])
		}
	}
	if w.Stats().Rebuilds.Load() == 0 {
		t.Errorf("the rogue appends caused no rebuild; the test did not exercise failures")
	}

	// Replay the log and compare every customer with the live writer; and
	// no customer's charges plus holds exceed its limit.
	replayed, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for k := range gcCustomers {
		cid := "c" + strconv.Itoa(k)
		live := status(t, admin, cid)
		rep, err := replayed.Status(cid, now)
		if err != nil {
			t.Fatal(err)
		}
		if live.Used.String() != rep.Used.String() || live.Reserved.String() != rep.Reserved.String() {
			t.Errorf("%s: live used %s reserved %s, replayed used %s reserved %s", cid, live.Used, live.Reserved, rep.Used, rep.Reserved)
		}
		if spent := live.Used.Add(live.Reserved); spent.Cmp(events.NewUnits(gcLimit, 0)) > 0 {
			t.Errorf("%s: used+reserved %s exceeds the limit %d", cid, spent, gcLimit)
		}
	}
	t.Logf("%d approvals, %d charges, %d rebuilds, %d events", len(approved), len(charged), w.Stats().Rebuilds.Load(), len(evs))
}
