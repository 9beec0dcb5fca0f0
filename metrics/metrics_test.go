package metrics_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/errcode"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/metrics"
	"github.com/agentbill/agentbill/projections"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testTimeout bounds every request and scrape of these tests.
const testTimeout = 20 * time.Second

// scrape reads /metrics over HTTP and parses the text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels are
// exactly labels (pairs of name and value); -1 if there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		if !labelsAre(m.Label, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// histogramSum returns the sum of family name's only histogram.
func histogramSum(fams map[string]*dto.MetricFamily, name string) float64 {
	if f := fams[name]; f != nil && len(f.Metric) == 1 && f.Metric[0].Histogram != nil {
		return f.Metric[0].Histogram.GetSampleSum()
	}
	return -1
}

func labelsAre(got []*dto.LabelPair, want []string) bool {
	if len(got)*2 != len(want) {
		return false
	}
	for i, l := range got {
		if l.GetName() != want[2*i] || l.GetValue() != want[2*i+1] {
			return false
		}
	}
	return true
}

// TestMetricsAfterScriptedRequests runs a writer with the metrics as its
// observer, scrapes /metrics before and after a scripted set of requests,
// and checks every figure against what the script did and what the log
// holds.
func TestMetricsAfterScriptedRequests(t *testing.T) {
	srv := testenv.StartServer(t, "")
	m := metrics.New(nil)
	w := testenv.StartWriter(t, srv, nil, nil, func(c *projections.Config) { c.Observer = m })
	m.Watch(w.Writer, nil)
	follower := testenv.StartFollower(t, srv)
	m.WatchFollower(follower.Seq)
	hs := httptest.NewServer(m.Handler())
	t.Cleanup(hs.Close)

	before := scrape(t, hs.URL)
	if v := value(before, "agentbill_decisions_total", "op", "preflight", "outcome", "approved", "reason", ""); v != -1 {
		t.Fatalf("approved preflights before any request: %v, want none", v)
	}
	if v := value(before, "agentbill_writer_role", "role", projections.RoleLeader); v != 1 {
		t.Fatalf("agentbill_writer_role{role=leader}: got %v, want 1", v)
	}

	c := testenv.Client(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := c.SetBudget(ctx, "acme", ledger.BudgetRequest{Limit: testenv.Ptr(t, "10"), Period: "month"}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, false} { // 4 + 4 fit in 10; 4 more does not
		r, err := c.Preflight(ctx, "acme", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "4")})
		if err != nil || r.Approved != want {
			t.Fatalf("preflight %d: got %+v, %v; want approved %v", i, r, err, want)
		}
	}
	_, err := c.Record(ctx, "acme", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "1"), ReservationID: "no-such-hold"})
	if code := errcode.Classify(err).Code; code != ledger.CodeNotFound {
		t.Fatalf("record of an unknown hold: got %v, want not_found", err)
	}

	after := scrape(t, hs.URL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"agentbill_decisions_total", []string{"op", "budget", "outcome", "ok", "reason", ""}, 1},
		{"agentbill_decisions_total", []string{"op", "preflight", "outcome", "approved", "reason", ""}, 2},
		{"agentbill_decisions_total", []string{"op", "preflight", "outcome", "refused", "reason", ledger.ReasonBudgetExhausted}, 1},
		{"agentbill_decisions_total", []string{"op", "record", "outcome", "error", "reason", string(ledger.CodeNotFound)}, 1},
		{"agentbill_preflight_duration_seconds", nil, 3},
		{"agentbill_customers", nil, 1},
		{"agentbill_open_reservations", nil, 2},
		{"agentbill_writer_role", []string{"role", projections.RoleLeader}, 1},
		{"agentbill_writer_role", []string{"role", projections.RoleStarting}, 0},
		{"agentbill_snapshot_failures_total", nil, 0}, // present (value -1 would be absent)
		{"agentbill_snapshot_shadow_restarts_total", nil, 0},
		{"agentbill_snapshot_bases_total", nil, 0},
	} {
		if got := value(after, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// The commit figures agree with the log itself: every event was in
	// one acknowledged commit, and each commit is one stream message.
	evs := testenv.StreamEvents(t, testenv.Connect(t, srv))
	last, err := projections.LastSequence(ctx, testenv.JetStream(t, testenv.Connect(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	commits := value(after, "agentbill_commit_events")
	if got := histogramSum(after, "agentbill_commit_events"); got != float64(len(evs)) {
		t.Errorf("events in commits: got %v, want %d (the stream's)", got, len(evs))
	}
	if got := value(after, "agentbill_append_duration_seconds"); got != commits || commits < 4 {
		t.Errorf("appends timed: %v, commits: %v; want equal and at least 4", got, commits)
	}
	if got := histogramSum(after, "agentbill_append_duration_seconds"); got <= 0 {
		t.Errorf("append time: got %v s, want > 0", got)
	}
	if got := value(after, "agentbill_stream_last_sequence"); got != float64(last) {
		t.Errorf("agentbill_stream_last_sequence: got %v, want %d", got, last)
	}
	if n := testenv.CountType(evs, "acme", events.TypeDenied); n != 1 {
		t.Errorf("denied events in the log: %d, want 1", n)
	}

	// The dashboard's follower catches up with the log, and the gauge
	// says how far it has got.
	for deadline := time.Now().Add(testTimeout); follower.Seq() < last; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("follower at %d, log at %d", follower.Seq(), last)
		}
	}
	if got := value(scrape(t, hs.URL), "agentbill_dashboard_sequence"); got != float64(last) {
		t.Errorf("agentbill_dashboard_sequence: got %v, want %d", got, last)
	}
}

// TestSnapshotAge: agentbill_snapshot_age_seconds is absent until the
// writer stores a snapshot, then reads the metrics clock's distance from
// it, never below zero.
func TestSnapshotAge(t *testing.T) {
	srv := testenv.StartServer(t, "")
	m := metrics.New(nil)
	w := testenv.StartWriter(t, srv, nil, nil, func(c *projections.Config) {
		c.Observer = m
		c.Snapshots.EventsEvery = 1 << 62 // only the forced snapshot below
	})
	var now atomic.Int64 // the metrics clock, Unix ns
	m.Watch(w.Writer, func() time.Time { return time.Unix(0, now.Load()) })
	hs := httptest.NewServer(m.Handler())
	t.Cleanup(hs.Close)

	if v := value(scrape(t, hs.URL), "agentbill_snapshot_age_seconds"); v != -1 {
		t.Fatalf("agentbill_snapshot_age_seconds before any snapshot: got %v, want absent", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// Twenty customers alike, so that the snapshot compresses for sure: a
	// state of one customer is a few hundred bytes S2 may not shrink (CI
	// once stored 287 bytes as 287).
	c := testenv.Client(t, srv)
	for i := range 20 {
		if _, err := c.SetBudget(ctx, fmt.Sprintf("acme-%d", i), ledger.BudgetRequest{Limit: testenv.Ptr(t, "10"), Period: "month"}); err != nil {
			t.Fatal(err)
		}
	}
	snaps := &w.Stats().Snapshots
	w.SnapshotNow()
	for deadline := time.Now().Add(testTimeout); snaps.Saved.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot stored within %s", testTimeout)
		}
	}
	at := time.Unix(0, snaps.SavedAt.Load())
	for _, c := range []struct {
		now  time.Time
		want float64
	}{
		{at.Add(90 * time.Second), 90},
		{at.Add(1500 * time.Millisecond), 1.5},
		{at, 0},
		{at.Add(-time.Minute), 0}, // a clock behind the writer's reads no negative age
	} {
		now.Store(c.now.UnixNano())
		fams := scrape(t, hs.URL)
		if got := value(fams, "agentbill_snapshot_age_seconds"); got != c.want {
			t.Errorf("agentbill_snapshot_age_seconds %s after the snapshot: got %v, want %v", c.now.Sub(at), got, c.want)
		}
		if got, want := value(fams, "agentbill_snapshot_sequence"), float64(snaps.SavedSeq.Load()); got != want || want == 0 {
			t.Errorf("agentbill_snapshot_sequence: got %v, want %v (not 0)", got, want)
		}
		size, stored := value(fams, "agentbill_snapshot_bytes"), value(fams, "agentbill_snapshot_stored_bytes")
		if size != float64(snaps.SavedBytes.Load()) || stored != float64(snaps.StoredBytes.Load()) || stored <= 0 || stored >= size {
			t.Errorf("agentbill_snapshot_bytes %v, agentbill_snapshot_stored_bytes %v: want %d and %d, stored fewer (compressed)",
				size, stored, snaps.SavedBytes.Load(), snaps.StoredBytes.Load())
		}
		if got, want := value(fams, "agentbill_snapshot_shadow_sequence"), float64(snaps.ShadowSeq.Load()); got != want || want < float64(snaps.SavedSeq.Load()) {
			t.Errorf("agentbill_snapshot_shadow_sequence: got %v, want %v (at least the snapshot's)", got, want)
		}
	}
}

// statsSource is a Source with figures set by the test.
type statsSource struct{ stats projections.Stats }

func (s *statsSource) Stats() *projections.Stats { return &s.stats }
func (s *statsSource) Role() string              { return projections.RoleLeader }

// TestSnapshotFailures: agentbill_snapshot_failures_total counts the
// snapshots the writer could not take or store.
func TestSnapshotFailures(t *testing.T) {
	m := metrics.New(nil)
	src := &statsSource{}
	m.Watch(src, nil)
	hs := httptest.NewServer(m.Handler())
	t.Cleanup(hs.Close)
	if got := value(scrape(t, hs.URL), "agentbill_snapshot_failures_total"); got != 0 {
		t.Fatalf("agentbill_snapshot_failures_total with none: got %v, want 0", got)
	}
	src.stats.Snapshots.Failed.Store(3)
	if got := value(scrape(t, hs.URL), "agentbill_snapshot_failures_total"); got != 3 {
		t.Fatalf("agentbill_snapshot_failures_total after 3 failures: got %v, want 3", got)
	}
}

// TestLedgerCounters: grants by bounded source, a forfeited grant,
// a partial approval, an overdraft entered and the two new refusal
// reasons are counted from the acknowledged events; no series names a
// customer, scope or free-text source.
func TestLedgerCounters(t *testing.T) {
	srv := testenv.StartServer(t, "")
	m := metrics.New(nil)
	clock := testenv.NewClock(time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC))
	w := testenv.StartWriter(t, srv, clock, nil, func(c *projections.Config) { c.Observer = m })
	m.Watch(w.Writer, nil)
	hs := httptest.NewServer(m.Handler())
	t.Cleanup(hs.Close)
	if v := value(scrape(t, hs.URL), "agentbill_grants_total", "source", metrics.SourcePurchase); v != 0 {
		t.Fatalf("grants before any: %v, want a series at 0", v)
	}

	c := testenv.Client(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	u := func(s string) *events.Units { return testenv.Ptr(t, s) }
	if _, err := c.SetBudget(ctx, "acme", ledger.BudgetRequest{Limit: u("10"), Period: "month", Overdraft: u("5"), MaxRunsPerAgent: 1,
		ScopeLimits: []ledger.ScopeLimitRequest{{Dimension: "team", Value: "research", Limit: testenv.Ptr(t, "3")}}}); err != nil {
		t.Fatal(err)
	}
	exp := clock.Now().Add(time.Hour)
	for _, g := range []ledger.GrantRequest{
		{Units: u("2.5")},
		{Units: u("4"), Source: "promo-2026", ExpiresAt: &exp},
		{Units: u("1"), Source: "spring sale"},
	} {
		if _, err := c.Grant(ctx, "acme", g); err != nil {
			t.Fatal(err)
		}
	}
	preflight := func(agent, est, least string, scope map[string]string) *ledger.PreflightReply {
		t.Helper()
		req := ledger.PreflightRequest{AgentID: agent, EstimatedUnits: u(est), Scope: scope}
		if least != "" {
			req.MinUnits = u(least)
		}
		r, err := c.Preflight(ctx, "acme", req)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := preflight("a", "5", "1", map[string]string{"team": "research"}); !r.Partial {
		t.Fatalf("want a partial approval: %+v", r)
	}
	if r := preflight("b", "1", "", map[string]string{"team": "research"}); r.Reason != ledger.ReasonScopeLimitExceeded {
		t.Fatalf("want scope_limit_exceeded: %+v", r)
	}
	if r := preflight("a", "1", "", nil); r.Reason != ledger.ReasonConcurrencyLimitExceeded {
		t.Fatalf("want concurrency_limit_exceeded: %+v", r)
	}
	// 17.5 in all, 3 held: 18 more goes 3.5 into the 5 of overdraft.
	if r := preflight("c", "18", "", nil); !r.Overdraft {
		t.Fatalf("want an approval into the overdraft: %+v", r)
	}
	// The promo grant expires; the next command of the customer forfeits it.
	clock.Advance(2 * time.Hour)
	if _, err := c.Status(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	preflight("d", "1", "", nil)

	after := scrape(t, hs.URL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"agentbill_grants_total", []string{"source", metrics.SourcePurchase}, 1},
		{"agentbill_grants_total", []string{"source", metrics.SourceOther}, 2},
		{"agentbill_grants_total", []string{"source", metrics.SourceRollover}, 0},
		{"agentbill_grant_units_total", []string{"source", metrics.SourcePurchase}, 2.5},
		{"agentbill_grant_units_total", []string{"source", metrics.SourceOther}, 5},
		{"agentbill_grants_expired_total", nil, 1},
		{"agentbill_grant_units_expired_total", nil, 4},
		{"agentbill_partial_approvals_total", nil, 1},
		{"agentbill_overdrafts_started_total", nil, 1},
		{"agentbill_decisions_total", []string{"op", "preflight", "outcome", "refused", "reason", ledger.ReasonScopeLimitExceeded}, 1},
		{"agentbill_decisions_total", []string{"op", "preflight", "outcome", "refused", "reason", ledger.ReasonConcurrencyLimitExceeded}, 1},
		{"agentbill_decisions_total", []string{"op", "grant", "outcome", "ok", "reason", ""}, 3},
	} {
		if got := value(after, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(after["agentbill_grants_total"].GetMetric()); n != 3 {
		t.Errorf("agentbill_grants_total has %d series, want 3 (purchase, rollover, other)", n)
	}
}

// TestRateLimitedCounted: a preflight past its customer's rate limit is
// counted in agentbill_rate_limited_total, and not as a decision (it is
// not one).
func TestRateLimitedCounted(t *testing.T) {
	srv := testenv.StartServer(t, "")
	m := metrics.New(nil)
	w := testenv.StartWriter(t, srv, nil, nil, func(c *projections.Config) { c.Observer = m })
	m.Watch(w.Writer, nil)
	hs := httptest.NewServer(m.Handler())
	t.Cleanup(hs.Close)
	c := testenv.Client(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	rl := &events.RateLimit{PerSecond: testenv.Units(t, "0.001"), Burst: 1} // no token comes back during the test
	if _, err := c.SetBudget(ctx, "acme", ledger.BudgetRequest{Limit: testenv.Ptr(t, "10"), Period: "month", RateLimit: rl}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"", ledger.ReasonRateLimited, ledger.ReasonRateLimited} {
		r, err := c.Preflight(ctx, "acme", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "1")})
		if err != nil || r.Reason != want {
			t.Fatalf("preflight %d: got %+v, %v; want reason %q", i, r, err, want)
		}
	}
	fams := scrape(t, hs.URL)
	if got := value(fams, "agentbill_rate_limited_total"); got != 2 {
		t.Errorf("agentbill_rate_limited_total: got %v, want 2", got)
	}
	if got := value(fams, "agentbill_decisions_total", "op", "preflight", "outcome", "refused", "reason", ledger.ReasonRateLimited); got != -1 {
		t.Errorf("rate_limited counted as a decision: %v", got)
	}
}
