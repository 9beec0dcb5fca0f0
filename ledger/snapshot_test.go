package ledger_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// Snapshot property: a snapshot of the live state taken at any point,
// restored, with the rest of the log applied, is the state a full replay
// gives (byte for byte), which is the live state; and it goes on deciding
// exactly as the live state.

const (
	snapSeeds     = 6
	snapSteps     = 1000 // per seed
	snapPoints    = 5    // snapshots taken at random steps, per seed
	snapTwinSteps = 300
)

var snapMeta = ledger.SnapshotMeta{Seq: 42, Writer: "0", Commit: "commit-42"}

// snapshotOf returns a state's snapshot bytes.
func snapshotOf(t *testing.T, s *ledger.State) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.WriteSnapshot(&buf, snapMeta); err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	return buf.Bytes()
}

// restore reads a snapshot that must verify.
func restore(t *testing.T, b []byte) *ledger.State {
	t.Helper()
	s, meta, err := ledger.ReadSnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("ReadSnapshot: %v", err)
	}
	if want := sha256.Sum256(b[:len(b)-sha256.Size]); !bytes.Equal(meta.Digest, want[:]) {
		t.Fatalf("ReadSnapshot digest = %x, want %x (the trailer)", meta.Digest, want)
	}
	if meta.Digest = nil; !reflect.DeepEqual(meta, snapMeta) {
		t.Fatalf("ReadSnapshot meta = %+v, want %+v", meta, snapMeta)
	}
	return s
}

type snapPoint struct {
	events int    // events in the log when it was taken
	bytes  []byte // the live state's snapshot then
}

func TestSnapshotPlusTailEqualsReplay(t *testing.T) {
	for seed := uint64(1); seed <= snapSeeds; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			s := newPropSim(t, seed+100)
			var points []snapPoint
			for i := 0; i < snapSteps; i++ {
				s.step(s.gen())
				if s.rng.IntN(snapSteps) < snapPoints {
					points = append(points, snapPoint{events: len(s.log), bytes: snapshotOf(t, s.live)})
				}
			}
			points = append(points, snapPoint{events: 0, bytes: snapshotOf(t, ledger.NewState())})
			full := replay(t, s.log)
			want := snapshotOf(t, full)
			if live := snapshotOf(t, s.live); !bytes.Equal(live, want) {
				t.Fatalf("the live state's snapshot (%d bytes) differs from the replayed state's (%d bytes)", len(live), len(want))
			}
			var last *ledger.State
			for _, p := range points {
				r := restore(t, p.bytes)
				if got := snapshotOf(t, r); !bytes.Equal(got, p.bytes) {
					t.Fatalf("snapshot at %d events: restored state re-encodes differently", p.events)
				}
				applyLog(t, r, s.log[p.events:])
				if got := snapshotOf(t, r); !bytes.Equal(got, want) {
					t.Fatalf("snapshot at %d events + tail of %d differs from the full replay", p.events, len(s.log)-p.events)
				}
				if got, want := r.EventsApplied(), uint64(len(s.log)); got != want {
					t.Fatalf("snapshot + tail applied %d events, want %d", got, want)
				}
				last = r
			}
			if len(points) > 1 {
				last = restore(t, points[0].bytes)
				applyLog(t, last, s.log[points[0].events:])
			}
			s.checkTwinOf(last)
		})
	}
}

// checkTwinOf lets twin decide the next steps alongside the live state:
// replies, events and errors must be identical, which covers what Status
// does not show (keys, closed reservations, deadlines, fired alerts).
func (s *propSim) checkTwinOf(twin *ledger.State) {
	t := s.t
	t.Helper()
	s.decideAlongside(twin, snapTwinSteps, nil)
	if !bytes.Equal(snapshotOf(t, twin), snapshotOf(t, s.live)) {
		t.Fatalf("after %d steps decided by both, the twin's snapshot differs from the live one's", snapTwinSteps)
	}
}

// A reservation that expired and was then recorded late is put in the
// closed window twice; it keeps its first place, and is forgotten when that
// leaves the window. The snapshot keeps every table a customer has (tasks
// with ceilings, agent limits, thresholds).
func TestSnapshotKeepsEveryTable(t *testing.T) {
	f := newFixture(t)
	f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("100"), Period: "month", Thresholds: []events.Units{
		events.MustParseUnits("0.5"), events.MustParseUnits("0.9")}, UpgradeURL: "https://example.com/up",
		AgentLimits: map[string]events.Units{"a1": events.MustParseUnits("80"), "a0": events.MustParseUnits("5")}})
	late := f.reserve("c1", "a1", "10", "1s")
	f.now = f.now.Add(2 * time.Second)
	f.sweep(10)
	f.now = f.now.Add(time.Second)
	f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a1", Units: up("3"), ReservationID: late, IdempotencyKey: "k-late"})
	f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a1", EstimatedUnits: up("50"), TaskRef: "t1",
		TaskCeiling: up("60"), TTL: "24h", IdempotencyKey: "k-big"})
	f.now = f.now.Add(ledger.IdempotencyWindow + time.Hour)
	other := f.reserve("c1", "a0", "1", "1s")
	f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: other}) // pops the late hold's first entry

	b := snapshotOf(t, f.s)
	r := restore(t, b)
	if got := snapshotOf(t, r); !bytes.Equal(got, b) {
		t.Fatalf("restored state re-encodes differently")
	}
	for _, s := range []*ledger.State{f.s, r} {
		s.NewID = (&counter{n: 1000}).next
		_, _, err := s.Decide(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a1", Units: up("1"), ReservationID: late}, f.now)
		// Its first put left the window more than 24 h ago, so the hold
		// is forgotten (the window no longer keeps it forever).
		if ledger.ErrorCode(err) != ledger.CodeNotFound {
			t.Errorf("record of a hold settled late, past the window: err %v, want not_found", err)
		}
	}
	if got, want := statusJSON(t, r, "c1", f.now), f.statusJSON("c1"); got != want {
		t.Errorf("restored status:\n got %s\nwant %s", got, want)
	}
}

// A snapshot that does not verify is refused, whatever is wrong with it,
// and reading it never panics: of a state from the property test, and of
// one with grants, a policy, scope limits and scoped holds.
func TestSnapshotRejectsCorruption(t *testing.T) {
	s := newPropSim(t, 7)
	for i := 0; i < 300; i++ {
		s.step(s.gen())
	}
	for what, st := range map[string]*ledger.State{"property": s.live, "credits": creditsFixture(t).s} {
		t.Run(what, func(t *testing.T) { checkRefusesCorruption(t, snapshotOf(t, st)) })
	}
}

func checkRefusesCorruption(t *testing.T, good []byte) {
	restore(t, good)
	refused := func(what string, b []byte) {
		t.Helper()
		st, _, err := ledger.ReadSnapshot(bytes.NewReader(b))
		if err == nil || st != nil || !errors.Is(err, ledger.ErrInvalidSnapshot) {
			t.Fatalf("%s: ReadSnapshot = %v, %v; want ErrInvalidSnapshot", what, st != nil, err)
		}
	}
	refused("empty", nil)
	refused("garbage", []byte("this is not a snapshot at all, not even close to one"))
	refused("data after the trailer", append(bytes.Clone(good), 0))
	old := bytes.Clone(good[:len(good)-sha256.Size])
	// 1: before windows dropped their tags; 2: before idempotency entries
	// dropped hash and op; 3: before grants, scopes and policies.
	for _, v := range []byte{1, 2, 3} {
		old[len("AGBSNAP\n")] = v
		sum := sha256.Sum256(old)
		refused(fmt.Sprintf("version %d", v), append(bytes.Clone(old), sum[:]...))
	}
	for _, n := range []int{1, 8, 9, 40, len(good) / 2, len(good) - 33, len(good) - 32, len(good) - 1} {
		refused(fmt.Sprintf("truncated to %d of %d bytes", n, len(good)), good[:n])
	}
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 1 << (i % 8)
		refused(fmt.Sprintf("bit flipped in byte %d of %d", i, len(good)), bad)
	}
}

// A snapshot that verifies but holds a value the ledger does not know (a
// period kind, a closed reservation's status)
// is refused: the trailer is recomputed, so only the decoder can refuse it.
func TestSnapshotRejectsUnknownValues(t *testing.T) {
	f := newFixture(t)
	f.budget("c1", "100", "month")
	f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a1", EstimatedUnits: up("5"), IdempotencyKey: "k1"})
	f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a1", Units: up("2"), ReservationID: f.reserve("c1", "a1", "3", "1m")})
	good := snapshotOf(t, f.s)
	restore(t, good)
	payload := good[:len(good)-sha256.Size]
	for _, tc := range []struct{ what, known, unknown string }{
		{"period", string(ledger.PeriodMonth), "mnthl"},
		{"closed status", ledger.StatusRecorded, "recordex"},
	} {
		known := append([]byte{byte(len(tc.known))}, tc.known...)
		if !bytes.Contains(payload, known) {
			t.Fatalf("%s: the snapshot holds no %q", tc.what, tc.known)
		}
		bad := bytes.ReplaceAll(payload, known, append([]byte{byte(len(tc.unknown))}, tc.unknown...))
		sum := sha256.Sum256(bad)
		st, _, err := ledger.ReadSnapshot(bytes.NewReader(append(bad, sum[:]...)))
		if err == nil || st != nil || !errors.Is(err, ledger.ErrInvalidSnapshot) || !strings.Contains(err.Error(), tc.unknown) {
			t.Errorf("%s %q: ReadSnapshot = %v, %v; want ErrInvalidSnapshot naming it", tc.what, tc.unknown, st != nil, err)
		}
	}
}

// A large state is encoded in parts on every core; the bytes do not depend
// on how many parts there were, nor on encoding in the background.
func TestSnapshotEncodingIndependentOfParallelism(t *testing.T) {
	s := ledger.NewState()
	ids := &counter{}
	s.NewID = ids.next
	s.Default = &ledger.DefaultBudget{Limit: events.MustParseUnits("100"), Period: ledger.PeriodMonth}
	for i := range 25_000 {
		cid := fmt.Sprintf("cust-%d", i)
		if _, _, err := s.Decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "a", EstimatedUnits: up("1.5"),
			IdempotencyKey: fmt.Sprintf("k%d", i%7)}, t0); err != nil {
			t.Fatal(err)
		}
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var want []byte
	for _, procs := range []int{1, 2, 3} {
		runtime.GOMAXPROCS(procs)
		got := snapshotOf(t, s)
		if want == nil {
			want = got
		} else if !bytes.Equal(got, want) {
			t.Fatalf("with %d cores the snapshot differs from the one with 1", procs)
		}
	}
	var bg bytes.Buffer
	if err := s.WriteSnapshotInBackground(&bg, snapMeta); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bg.Bytes(), want) {
		t.Fatal("the background encoding differs from the one on every core")
	}
	r := restore(t, want)
	if r.Customers() != 25_000 || !bytes.Equal(snapshotOf(t, r), want) {
		t.Fatalf("restored %d customers; re-encoding equal: %v", r.Customers(), bytes.Equal(snapshotOf(t, r), want))
	}
}

// A state with every part grants, scopes and policies brought: grants
// (one expiring, one not yet effective, one that never expires, one
// partly used), a policy (overdraft, rollover cap, run caps), scope limits
// with usage, and open holds with scopes. It re-encodes to the same
// bytes, shows the same status, and decides the next commands exactly as
// the original: retries answered from remembered grants and scoped holds,
// a scope refusal, a partial approval into the overdraft, run caps, a
// charge grants fund, a grant expired by the sweep (whose heap is rebuilt
// on restore), and the rollover grant of a new period. A snapshot taken
// midway plus the rest of the log is the full replay.
func TestSnapshotKeepsCreditsAndScopes(t *testing.T) {
	f := creditsFixture(t)
	mid := snapshotOf(t, f.s)
	midEvents := len(f.log)
	r := restore(t, mid)
	if got := snapshotOf(t, r); !bytes.Equal(got, mid) {
		t.Fatalf("restored state re-encodes differently")
	}
	if got, want := statusJSON(t, r, "c1", f.now), f.statusJSON("c1"); got != want {
		t.Fatalf("restored status:\n got %s\nwant %s", got, want)
	}
	twin := &snapTwin{f: f, s: r}
	twin.s.NewID = (&counter{n: f.ids.n}).next
	alice := map[string]string{"team": "research", "user": "alice"}

	twin.decide(&ledger.GrantRequest{CustomerID: "c1", Units: up("10"), IdempotencyKey: "k-g3"}, `"grant_id":"id-`)
	twin.decide(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a1", EstimatedUnits: up("30"), TTL: "1h",
		Scope: alice, IdempotencyKey: "k-p1"}, `"approved":true`)
	twin.decide(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a2", EstimatedUnits: up("1"), Scope: alice},
		ledger.ReasonScopeLimitExceeded, `"dimension":"user"`)
	for range 3 {
		twin.decide(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a3", EstimatedUnits: up("0.5")}, `"approved":true`)
	}
	twin.decide(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a3", EstimatedUnits: up("0.5")},
		ledger.ReasonConcurrencyLimitExceeded)
	twin.decide(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a2", EstimatedUnits: up("500"), MinUnits: up("1"),
		Scope: map[string]string{"team": "ops"}}, `"partial":true`, `"overdraft":true`, `overdraft_started`)
	twin.decide(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a1", Units: up("7"), Scope: map[string]string{"team": "ops"}},
		`"funded_by"`)
	f.now = f.now.Add(49 * time.Hour) // past the first grant's expiry
	twin.sweep(10, events.TypeGrantExpired)
	twin.decide(&ledger.StatusRequest{CustomerID: "c1"}, `"grants"`)
	f.now = time.Date(2026, 4, 1, 0, 0, 1, 0, time.UTC) // March's allowance is spent: nothing rolls over
	twin.decide(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a1", EstimatedUnits: up("1")}, `"trigger":"new_period"`)
	f.now = time.Date(2026, 5, 1, 0, 0, 1, 0, time.UTC) // April's unused allowance, capped, rolls over
	twin.decide(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a1", EstimatedUnits: up("1")}, `"source":"rollover"`)
	twin.decide(&ledger.StatusRequest{CustomerID: "c1"}, `"rollover":"30"`, `"rate_limit":{"per_second":2.5,"burst":5}`)

	want := snapshotOf(t, f.s)
	if got := snapshotOf(t, twin.s); !bytes.Equal(got, want) {
		t.Fatalf("after deciding alike, the restored state's snapshot differs from the live one's")
	}
	tail := restore(t, mid)
	applyLog(t, tail, encodeAll(t, f.log[midEvents:]))
	if got := snapshotOf(t, tail); !bytes.Equal(got, want) {
		t.Fatalf("the snapshot plus the rest of the log differs from the live state")
	}
	if got := snapshotOf(t, replay(t, encodeAll(t, f.log))); !bytes.Equal(got, want) {
		t.Fatalf("the full replay's snapshot differs from the live state's")
	}
}

// creditsFixture builds a customer with grants, a policy, scope limits
// with usage and scoped open holds, and a second customer without any.
func creditsFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	f.budget("c0", "10", "day")
	f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("100"), Period: "month", Rollover: "30", Overdraft: up("20"),
		MaxRuns: 6, MaxRunsPerAgent: 3, RateLimit: &events.RateLimit{PerSecond: events.MustParseUnits("2.5"), Burst: 5},
		Thresholds: []events.Units{events.MustParseUnits("0.5")}, IdempotencyKey: "k-budget",
		ScopeLimits: []ledger.ScopeLimitRequest{
			{Dimension: "user", Value: "alice", Limit: up("40"), Period: "day"},
			{Dimension: "team", Value: "research", Limit: up("80")},
			{Dimension: "team", Value: "ops", Limit: up("1000")},
		}})
	expires, later := f.now.Add(48*time.Hour), f.now.Add(24*time.Hour)
	priority := 10
	f.ok(&ledger.GrantRequest{CustomerID: "c1", Units: up("50"), Priority: &priority, Source: "promo", ExpiresAt: &expires,
		IdempotencyKey: "k-g1"})
	f.ok(&ledger.GrantRequest{CustomerID: "c1", Units: up("25"), EffectiveAt: &later, Note: "next week"})
	f.ok(&ledger.GrantRequest{CustomerID: "c1", Units: up("10"), IdempotencyKey: "k-g3"})
	alice := map[string]string{"team": "research", "user": "alice"}
	pr, _ := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a1", EstimatedUnits: up("30"), TTL: "1h",
		Scope: alice, IdempotencyKey: "k-p1"})
	f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a2", Units: up("60"), Scope: map[string]string{"user": "bob"}})
	f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a2", EstimatedUnits: up("20"), TTL: "2h",
		Scope: map[string]string{"team": "research"}, IdempotencyKey: "k-p2"})
	rr, _ := f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a1", Units: up("45"), ReservationID: pr.ReservationID,
		IdempotencyKey: "k-r1"})
	if len(rr.FundedBy) == 0 {
		t.Fatalf("the fixture's record was funded by no grant: %+v", rr)
	}
	f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a1", EstimatedUnits: up("5"), TTL: "3h",
		Scope: map[string]string{"team": "ops", "project": "p1"}})
	return f
}

// snapTwin decides the same commands on the fixture's live state, on a
// state restored earlier (s), and on one restored from the live state
// right before the step, at the fixture's clock: replies, events and
// errors must be identical, and contain what the step is meant to
// exercise.
type snapTwin struct {
	f *fixture
	s *ledger.State
}

// fresh restores the live state's snapshot, which must re-encode to it.
func (tw *snapTwin) fresh() *ledger.State {
	t := tw.f.t
	t.Helper()
	b := snapshotOf(t, tw.f.s)
	r := restore(t, b)
	if !bytes.Equal(snapshotOf(t, r), b) {
		t.Fatalf("at %d events, the restored state re-encodes differently", len(tw.f.log))
	}
	r.NewID = (&counter{n: tw.f.ids.n}).next
	return r
}

func (tw *snapTwin) decide(cmd ledger.Command, wants ...string) {
	t := tw.f.t
	t.Helper()
	if st, ok := cmd.(*ledger.StatusRequest); ok {
		want := tw.f.statusJSON(st.CustomerID)
		for _, s := range []*ledger.State{tw.s, tw.fresh()} {
			if got := statusJSON(t, s, st.CustomerID, tw.f.now); got != want {
				t.Fatalf("status differs:\n got %s\nwant %s", got, want)
			}
		}
		checkContains(t, "status", want, wants...)
		return
	}
	var got [2]propOutcome
	for i, s := range []*ledger.State{tw.s, tw.fresh()} {
		reply, evs, err := s.Decide(cmd, tw.f.now)
		got[i] = outcomeOf(t, reply, evs, err)
	}
	reply, evs, err := tw.f.decide(cmd)
	want := outcomeOf(t, reply, evs, err)
	for i, g := range got {
		if g != want {
			t.Fatalf("%T %s decided differently by restored state %d:\n got %+v\nwant %+v", cmd, mustJSON(t, cmd), i, g, want)
		}
	}
	checkContains(t, fmt.Sprintf("%T", cmd), want.reply+want.events+want.err, wants...)
}

func (tw *snapTwin) sweep(max int, typ events.Type) {
	t := tw.f.t
	t.Helper()
	var got [2]propOutcome
	for i, s := range []*ledger.State{tw.s, tw.fresh()} {
		got[i] = outcomeOf(t, nil, s.Sweep(tw.f.now, max), nil)
	}
	want := outcomeOf(t, nil, tw.f.sweep(max), nil)
	for i, g := range got {
		if g != want {
			t.Fatalf("Sweep decided differently by restored state %d:\n got %+v\nwant %+v", i, g, want)
		}
	}
	checkContains(t, "Sweep", want.events, `"type":"`+string(typ)+`"`)
}

// Snapshot property with grants, scopes and policies: random budgets
// (overdraft, rollover, run caps, scope limits), grants, scoped and partial
// preflights, records, releases, sweeps and clock steps, each decided alike
// by the live state, a state restored before the first step and one
// restored right before the step; at the end the snapshot taken before
// the first step plus the rest of the log is the full replay.
func TestSnapshotCreditsPlusTailEqualsReplay(t *testing.T) {
	const (
		seeds = 4
		steps = 300 // per seed
	)
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			f := creditsFixture(t)
			start, startEvents := snapshotOf(t, f.s), len(f.log)
			tw := &snapTwin{f: f, s: restore(t, start)}
			tw.s.NewID = (&counter{n: f.ids.n}).next
			g := &creditGen{rng: rand.New(rand.NewPCG(seed, 0xc4ed17)), f: f}
			for range steps {
				switch p := g.rng.IntN(100); {
				case p < 10:
					tw.sweepAny(g.rng.IntN(3) + 1)
				case p < 25:
					f.now = f.now.Add(g.pickDuration(time.Minute, time.Hour, 20*time.Hour, 3*24*time.Hour, 11*24*time.Hour))
				default:
					tw.decide(g.command())
				}
			}
			want := snapshotOf(t, f.s)
			if got := snapshotOf(t, tw.s); !bytes.Equal(got, want) {
				t.Fatalf("the state restored before step 1 ends with a different snapshot")
			}
			tail := restore(t, start)
			applyLog(t, tail, encodeAll(t, f.log[startEvents:]))
			if got := snapshotOf(t, tail); !bytes.Equal(got, want) {
				t.Fatalf("the snapshot plus %d events differs from the live state", len(f.log)-startEvents)
			}
		})
	}
}

// sweepAny is sweep without an expected event type.
func (tw *snapTwin) sweepAny(max int) {
	t := tw.f.t
	t.Helper()
	var got [2]propOutcome
	for i, s := range []*ledger.State{tw.s, tw.fresh()} {
		got[i] = outcomeOf(t, nil, s.Sweep(tw.f.now, max), nil)
	}
	want := outcomeOf(t, nil, tw.f.sweep(max), nil)
	if got[0] != want || got[1] != want {
		t.Fatalf("Sweep decided differently:\n got %+v\nwant %+v", got, want)
	}
}

// creditGen makes random commands for a small world: two customers, three
// agents, two scope dimensions of two values each, a few keys; and resends
// keyed commands, which are answered from the remembered event.
type creditGen struct {
	rng   *rand.Rand
	f     *fixture
	keyed []ledger.Command
}

func (g *creditGen) chance(percent int) bool { return g.rng.IntN(100) < percent }

func (g *creditGen) pick(from ...string) string { return from[g.rng.IntN(len(from))] }

func (g *creditGen) pickDuration(from ...time.Duration) time.Duration {
	return from[g.rng.IntN(len(from))]
}

func (g *creditGen) key() string {
	if g.chance(60) {
		return ""
	}
	return g.pick("k0", "k1", "k2", "k3", "k4", "k5")
}

func (g *creditGen) scope() map[string]string {
	m := map[string]string{}
	if g.chance(60) {
		m["team"] = g.pick("r", "o")
	}
	if g.chance(50) {
		m["user"] = g.pick("alice", "bob")
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func (g *creditGen) command() ledger.Command {
	if len(g.keyed) > 0 && g.chance(15) {
		return g.keyed[len(g.keyed)-1-g.rng.IntN(min(len(g.keyed), 5))]
	}
	cmd := g.newCommand()
	if gr, ok := cmd.(*ledger.GrantRequest); (ok && gr.IdempotencyKey != "") || keyOf(cmd) != "" {
		g.keyed = append(g.keyed, cmd)
	}
	return cmd
}

func (g *creditGen) newCommand() ledger.Command {
	cid, agent := g.pick("c1", "c1", "c2"), g.pick("a1", "a2", "a3")
	switch p := g.rng.IntN(100); {
	case p < 10:
		return g.budget(cid)
	case p < 22:
		return g.grant(cid)
	case p < 60:
		r := &ledger.PreflightRequest{CustomerID: cid, AgentID: agent, EstimatedUnits: up(g.pick("1", "5", "20", "60")),
			TTL: g.pick("1m", "1h", "20h"), Scope: g.scope(), IdempotencyKey: g.key()}
		if g.chance(30) {
			r.MinUnits = up(g.pick("0.5", "1"))
		}
		return r
	case p < 90:
		r := &ledger.RecordRequest{CustomerID: cid, AgentID: agent, Units: up(g.pick("0", "1", "7", "30")),
			Scope: g.scope(), IdempotencyKey: g.key()}
		if c := g.f.s.Customer(cid); c != nil && len(c.Open) > 0 && g.chance(70) {
			h := c.Open[g.rng.IntN(len(c.Open))]
			r.ReservationID, r.AgentID = h.ID, h.AgentID
		}
		return r
	}
	r := &ledger.ReleaseRequest{CustomerID: cid, ReservationID: "none", IdempotencyKey: g.key()}
	if c := g.f.s.Customer(cid); c != nil && len(c.Open) > 0 {
		r.ReservationID = c.Open[g.rng.IntN(len(c.Open))].ID
	}
	return r
}

func (g *creditGen) budget(cid string) *ledger.BudgetRequest {
	r := &ledger.BudgetRequest{CustomerID: cid, Limit: up(g.pick("0", "10", "100")), Period: g.pick("day", "week", "month", "none"),
		Rollover: ledger.Rollover(g.pick("", "", "all", "5")), MaxRuns: g.rng.IntN(3) * 2, MaxRunsPerAgent: g.rng.IntN(3),
		IdempotencyKey: g.key()}
	if r.Period == "none" {
		r.Rollover = ""
	}
	if g.chance(50) {
		r.Overdraft = up(g.pick("0", "10"))
	}
	for _, ref := range []events.ScopeRef{{Dimension: "team", Value: "r"}, {Dimension: "team", Value: "o"}, {Dimension: "user", Value: "alice"}} {
		if g.chance(50) {
			r.ScopeLimits = append(r.ScopeLimits, ledger.ScopeLimitRequest{Dimension: ref.Dimension, Value: ref.Value,
				Limit: up(g.pick("5", "40")), Period: g.pick("", "day", "month")})
		}
	}
	return r
}

func (g *creditGen) grant(cid string) *ledger.GrantRequest {
	r := &ledger.GrantRequest{CustomerID: cid, Units: up(g.pick("1", "5", "50")), IdempotencyKey: g.key()}
	if g.chance(50) {
		p := g.rng.IntN(3) * 500
		r.Priority = &p
	}
	if g.chance(30) {
		at := g.f.now.Add(g.pickDuration(time.Hour, 2*24*time.Hour))
		r.EffectiveAt = &at
	}
	if g.chance(60) {
		at := g.f.now.Add(g.pickDuration(2*time.Hour, 3*24*time.Hour, 40*24*time.Hour))
		r.ExpiresAt = &at
	}
	return r
}

// A retried request after a restart is answered from the remembered event
// the snapshot kept as bytes (decoded only then) exactly as the live
// state answers it: the same reply, no events, the same conflict for a
// key reused with another request; and answering leaves the restored
// state's snapshot unchanged.
func TestSnapshotRetryAfterRestoreAnswersAsLive(t *testing.T) {
	live := ledger.NewState()
	ids := 0
	live.NewID = func() string { ids++; return fmt.Sprintf("01900000-0000-7000-8000-%012d", ids) }
	live.Default = &ledger.DefaultBudget{Limit: events.NewUnits(100, 0), Period: ledger.PeriodMonth}
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	est, used, big, top := events.NewUnits(10, 0), events.NewUnits(7, 0), events.NewUnits(1000, 0), events.NewUnits(5, 0)
	limit := events.NewUnits(200, 0)
	var retries []ledger.Command
	decide := func(cmd ledger.Command) ledger.Reply {
		t.Helper()
		r, _, err := live.Decide(cmd, now)
		if err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
		retries = append(retries, cmd)
		now = now.Add(time.Second)
		return r
	}
	for i := range 3 {
		cid := fmt.Sprintf("c%d", i)
		p := decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "a", EstimatedUnits: &est, IdempotencyKey: "p"})
		decide(&ledger.RecordRequest{CustomerID: cid, AgentID: "a", Units: &used,
			ReservationID: p.(*ledger.PreflightReply).ReservationID, IdempotencyKey: "r"})
		p2 := decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "a", EstimatedUnits: &est, IdempotencyKey: "p2", TaskRef: "t"})
		decide(&ledger.ReleaseRequest{CustomerID: cid, ReservationID: p2.(*ledger.PreflightReply).ReservationID, IdempotencyKey: "rel"})
		decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "a", EstimatedUnits: &big, IdempotencyKey: "denied"})
		decide(&ledger.TopUpRequest{CustomerID: cid, Units: &top, IdempotencyKey: "top", Note: "n"})
		decide(&ledger.BudgetRequest{CustomerID: cid, Limit: &limit, Period: "week", IdempotencyKey: "budget"})
	}
	b := snapshotOf(t, live)
	restored := restore(t, b)
	restored.NewID, restored.Default = live.NewID, live.Default
	for _, cmd := range retries {
		want, wantEvs, wantErr := live.Decide(cmd, now)
		got, gotEvs, err := restored.Decide(cmd, now)
		if err != nil || wantErr != nil || len(gotEvs) != 0 || len(wantEvs) != 0 {
			t.Fatalf("%T retried: err %v (live %v), %d events (live %d), want none", cmd, err, wantErr, len(gotEvs), len(wantEvs))
		}
		if g, w := outcomeOf(t, got, nil, nil), outcomeOf(t, want, nil, nil); g != w {
			t.Errorf("%T retried after restore:\n got %+v\nwant %+v", cmd, g, w)
		}
	}
	reused := &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: &used, IdempotencyKey: "p"}
	_, _, wantErr := live.Decide(reused, now)
	_, _, err := restored.Decide(reused, now)
	if ledger.ErrorCode(err) != ledger.CodeConflict || fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Errorf("key reused after restore: err %v, want the live %v", err, wantErr)
	}
	if got := snapshotOf(t, restored); !bytes.Equal(got, b) {
		t.Error("answering retries changed the restored state's snapshot")
	}
}
