package projections_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go/jetstream"
)

// Determinism through the real log: random commands (many customers,
// preflights, records, releases, expiries, top-ups, budget changes, period
// rollovers) go through the writer; after each one every customer's live
// status is noted with the sequence it reflects. Replaying the log up to
// that sequence (ReplayStop.UntilSeq, as `agentbill replay --until-seq`
// does) must give exactly those statuses, at random prefixes and at the end.
func TestReplayAtAnyPrefixEqualsLiveState(t *testing.T) {
	const (
		steps     = 160
		customers = 6
		checks    = 8
	)
	rng := rand.New(rand.NewPCG(7, 11))
	s := testenv.StartServer(t, "")
	clock := testenv.NewClock(time.Date(2026, 1, 30, 22, 0, 0, 0, time.UTC))
	def := &ledger.DefaultBudget{Limit: events.NewUnits(50, 0), Period: ledger.PeriodMonth}
	testenv.StartWriter(t, s, clock, def)
	c := testenv.Client(t, s)
	ctx := context.Background()
	cid := func(i int) string { return []string{"a", "b.c", "d*", "~e", "f", "g h"}[i] }
	var open [][2]string // customer, reservation

	type point struct {
		seq      uint64
		at       time.Time
		statuses map[string]string
	}
	var points []point
	note := func() {
		p := point{at: clock.Now(), statuses: map[string]string{}}
		for i := range customers {
			st, err := c.Status(ctx, cid(i))
			if err != nil {
				t.Fatal(err)
			}
			if p.seq != 0 && st.AsOfSeq != p.seq {
				return // a sweep committed in between: not one consistent point
			}
			p.seq = st.AsOfSeq
			st.AsOfSeq = 0
			b, _ := json.Marshal(st)
			p.statuses[cid(i)] = string(b)
		}
		points = append(points, p)
	}
	units := func(max int) *events.Units {
		u := events.NewUnits(int64(1+rng.IntN(max)), -int32(rng.IntN(3)))
		return &u
	}
	for range steps {
		who := cid(rng.IntN(customers))
		var err error
		switch op := rng.IntN(10); {
		case op < 4:
			var r *ledger.PreflightReply
			r, err = c.Preflight(ctx, who, ledger.PreflightRequest{AgentID: "ag" + strconv.Itoa(rng.IntN(2)), EstimatedUnits: units(20), TTL: []string{"1m", "2h"}[rng.IntN(2)]})
			if err == nil && r.Approved {
				open = append(open, [2]string{who, r.ReservationID})
			}
		case op < 6 && len(open) > 0:
			k := rng.IntN(len(open))
			o := open[k]
			open = append(open[:k], open[k+1:]...)
			_, err = c.Record(ctx, o[0], ledger.RecordRequest{AgentID: "ag0", Units: units(25), ReservationID: o[1]})
			if ledger.ErrorCode(err) == ledger.CodeInvalidArgument || ledger.ErrorCode(err) == ledger.CodeConflict {
				err = nil // agent mismatch or already settled: refused, changes nothing
			}
		case op < 7 && len(open) > 0:
			k := rng.IntN(len(open))
			_, err = c.Release(ctx, open[k][0], open[k][1])
			open = append(open[:k], open[k+1:]...)
		case op < 8:
			_, err = c.TopUp(ctx, who, ledger.TopUpRequest{Units: units(10)})
		case op < 9:
			_, err = c.SetBudget(ctx, who, ledger.BudgetRequest{Limit: units(80), Period: []string{"day", "month", "month"}[rng.IntN(3)],
				Thresholds: []events.Units{testenv.Units(t, "0.5"), testenv.Units(t, "0.9")}})
		default:
			clock.Advance(time.Duration(rng.IntN(5)) * time.Hour) // crosses days and the month end
			time.Sleep(30 * time.Millisecond)                     // let the sweep expire what is due
		}
		if err != nil {
			t.Fatalf("step: %v", err)
		}
		note()
	}
	if len(points) < checks {
		t.Fatalf("only %d consistent points", len(points))
	}
	js := testenv.JetStream(t, c.Conn())
	picks := []int{len(points) - 1}
	for range checks {
		picks = append(picks, rng.IntN(len(points)))
	}
	for _, k := range picks {
		p := points[k]
		st, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{UntilSeq: p.seq}, def)
		if err != nil {
			t.Fatal(err)
		}
		for id, want := range p.statuses {
			got, err := st.Status(id, p.at)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			if string(b) != want {
				t.Errorf("replay to %d, customer %q:\n got %s\nwant %s", p.seq, id, b, want)
			}
		}
	}
}

// A replay that reuses the structs of applied events (ReplayStop.Recycle,
// as Rebuild, a restore and a takeover do) builds, byte for byte, the
// state a replay that allocates every event alone builds. The log comes
// from concurrent clients, so commits hold many events of each type
// (reserved, denied, recorded, released) and the reused arrays fill and
// grow.
func TestRecycledReplayEqualsFresh(t *testing.T) {
	const (
		clients = 16
		cycles  = 40
	)
	s := testenv.StartServer(t, "")
	def := &ledger.DefaultBudget{Limit: events.NewUnits(300, 0), Period: ledger.PeriodMonth}
	testenv.StartWriter(t, s, nil, def)
	c := testenv.Client(t, s)
	ctx := context.Background()
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			who := "cust-" + strconv.Itoa(i%5)
			est, used := events.NewUnits(int64(3+i%4), 0), events.NewUnits(2, -1)
			var err error
			for k := 0; k < cycles && err == nil; k++ {
				var r *ledger.PreflightReply
				r, err = c.Preflight(ctx, who, ledger.PreflightRequest{AgentID: "ag" + strconv.Itoa(k%3), EstimatedUnits: &est})
				if err != nil || !r.Approved {
					continue // refused: the budget ran out, a denied event
				}
				if k%4 == 0 {
					_, err = c.Release(ctx, who, r.ReservationID)
				} else {
					_, err = c.Record(ctx, who, ledger.RecordRequest{AgentID: "ag" + strconv.Itoa(k%3), Units: &used, ReservationID: r.ReservationID})
				}
			}
			errs <- err
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	js := testenv.JetStream(t, c.Conn())
	recycled, seq, err := projections.Rebuild(ctx, js, projections.ReplayStop{}, def)
	if err != nil {
		t.Fatal(err)
	}
	fresh := replayPlainly(t, js, projections.ReplayStop{UntilSeq: seq}, def)
	if fresh.EventsApplied() < clients*cycles {
		t.Fatalf("the log holds %d events, want at least %d", fresh.EventsApplied(), clients*cycles)
	}
	if got, want := snapshotOf(t, recycled, seq), snapshotOf(t, fresh, seq); !bytes.Equal(got, want) {
		t.Errorf("the recycling replay's state (%d bytes of snapshot) differs from the fresh one's (%d bytes)", len(got), len(want))
	}
}

// replayPlainly applies the log up to stop to a fresh state, one new
// struct for every event and every key put, as no Rebuild does.
func replayPlainly(t *testing.T, js jetstream.JetStream, stop projections.ReplayStop, def *ledger.DefaultBudget) *ledger.State {
	t.Helper()
	s := ledger.NewState()
	s.Default = def
	if _, err := projections.Replay(context.Background(), js, stop, func(_ uint64, e *events.Envelope) error {
		s.Apply(e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

func snapshotOf(t *testing.T, s *ledger.State, seq uint64) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.WriteSnapshot(&b, ledger.SnapshotMeta{Seq: seq}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Rebuild skips the puts into the windows of remembered requests and
// closed holds that the log's end has forgotten (ledger.State.ReplayEndsWith),
// and must build, byte for byte, the state of a replay that puts every
// key. Logs of days of traffic through the writer: one whose last day is
// busy (the puts of its first days are skipped), and one that ends in a
// sweep's expiry days after its last request, which the rebuild finds by
// reading back from the last commit; read back one commit only, the
// skipping cannot be sure and Rebuild replays again without it.
func TestRebuildSkippingEqualsEveryPut(t *testing.T) {
	for _, tc := range []struct {
		name       string
		quietEnd   bool
		endCommits int // commits read back from the last (0: ReplayEndCommitsMax)
	}{{"busy-end", false, 0}, {"quiet-end", true, 0}, {"quiet-end-read-back-one", true, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			quietEnd := tc.quietEnd
			if tc.endCommits != 0 {
				defer projections.SetReplayEndCommits(tc.endCommits)()
			}
			s := testenv.StartServer(t, "")
			start := time.Date(2026, 5, 3, 8, 0, 0, 0, time.UTC)
			clock := testenv.NewClock(start)
			def := &ledger.DefaultBudget{Limit: events.NewUnits(1_000_000, 0), Period: ledger.PeriodMonth}
			sg := newSigner(t)
			testenv.StartWriter(t, s, clock, def, signed(sg, "", nil))
			c := testenv.Client(t, s)
			ctx := context.Background()
			est, used := events.NewUnits(5, 0), events.NewUnits(3, 0)
			for hour := range 6 * 24 / 3 { // six days, a cycle each of 4 customers every 3 hours
				for i := range 4 {
					who := "cust-" + strconv.Itoa(i)
					r, err := c.Preflight(ctx, who, ledger.PreflightRequest{AgentID: "ag", EstimatedUnits: &est})
					if err != nil {
						t.Fatal(err)
					}
					if (hour+i)%3 == 0 {
						_, err = c.Release(ctx, who, r.ReservationID)
					} else {
						_, err = c.Record(ctx, who, ledger.RecordRequest{AgentID: "ag", Units: &used, ReservationID: r.ReservationID})
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				clock.Advance(3 * time.Hour)
			}
			if quietEnd {
				if _, err := c.Preflight(ctx, "cust-0", ledger.PreflightRequest{AgentID: "ag", EstimatedUnits: &est, TTL: "1h"}); err != nil {
					t.Fatal(err)
				}
				clock.Advance(3 * 24 * time.Hour)
				waitFor(t, func() bool { // the sweep expires the hold: the last event, days after the last request
					st, err := c.Status(ctx, "cust-0")
					return err == nil && st.OpenReservations == 0
				})
			}
			js := testenv.JetStream(t, c.Conn())
			again := projections.RebuildsAgain()
			// Verified as the writer verifies a replay: a rebuild that
			// starts again verifies the log again from its start.
			subject := events.LogSubject(events.WriterDefault)
			v := projections.NewLogVerifier(events.NewKeyring(sg.Public()), subject, true, 1, "")
			v.Lazy = true
			skipping, seq, err := projections.Rebuild(ctx, js, projections.ReplayStop{Verify: v}, def)
			if err != nil {
				t.Fatal(err)
			}
			last := testenv.LastCommit(t, js)
			if head, want := v.Head(subject), events.ChainHash(last.Header.Get(events.ChainHeader), last.Data); head != want {
				t.Fatalf("the verifier ends at chain head %q, want the last commit's %q", head, want)
			}
			if tc.endCommits == 1 {
				if projections.RebuildsAgain() != again+1 {
					t.Fatalf("a log whose last commit shows no request was not replayed again without skipping")
				}
			} else if skipping.ReplaySkipped() < 100 || projections.RebuildsAgain() != again {
				t.Fatalf("rebuild skipped %d puts and replayed again %d times, want over 100 and none",
					skipping.ReplaySkipped(), projections.RebuildsAgain()-again)
			}
			got, want := snapshotOf(t, skipping, seq), snapshotOf(t, replayPlainly(t, js, projections.ReplayStop{UntilSeq: seq}, def), seq)
			if !bytes.Equal(got, want) {
				t.Errorf("the rebuilt state (%d bytes of snapshot, %d puts skipped) differs from a replay's that puts every key (%d bytes)",
					len(got), skipping.ReplaySkipped(), len(want))
			}
			// An audit's replay up to a time in the log's fifth day.
			until := projections.ReplayStop{UntilTime: start.Add(4*24*time.Hour + 90*time.Minute)}
			skipping, seq, err = projections.Rebuild(ctx, js, until, def)
			if err != nil {
				t.Fatal(err)
			}
			if skipping.ReplaySkipped() < 100 {
				t.Fatalf("rebuild up to %s skipped %d puts, want over 100", until.UntilTime, skipping.ReplaySkipped())
			}
			got, want = snapshotOf(t, skipping, seq), snapshotOf(t, replayPlainly(t, js, until, def), seq)
			if !bytes.Equal(got, want) {
				t.Errorf("rebuilt up to %s: the state (%d bytes of snapshot, %d puts skipped) differs from a replay's that puts every key (%d bytes)",
					until.UntilTime, len(got), skipping.ReplaySkipped(), len(want))
			}
		})
	}
}
