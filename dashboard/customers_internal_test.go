package dashboard

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// TestKeepMostUrgent: past CustomerRowsMax rows, the table keeps exactly
// the most urgent ones, in order, as sorting every row would.
func TestKeepMostUrgent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var kept, all []CustomerRow
	for i := range 4 * CustomerRowsMax {
		limit := events.NewUnits(int64(1+rng.IntN(1000)), 0)
		used := events.NewUnits(int64(rng.IntN(1100)), -1) // up to 110 units
		st := &ledger.StatusReply{
			CustomerID: fmt.Sprintf("c%05d", i), Limit: limit, Used: used, Reserved: events.Zero,
			Remaining: events.SignedOf(limit.Sub(used).NonNegative()), Exhausted: limit.Sub(used).Sign() <= 0, PeriodStart: time.Time{},
		}
		row := rowOf(st)
		kept = keepMostUrgent(kept, row)
		all = append(all, row)
	}
	slices.SortFunc(kept, moreUrgent)
	slices.SortFunc(all, moreUrgent)
	ids := func(rows []CustomerRow) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = r.ID + " " + r.Level
		}
		return out
	}
	if got, want := ids(kept), ids(all[:CustomerRowsMax]); !slices.Equal(got, want) {
		t.Fatalf("kept %d rows; first difference from the %d most urgent at %d", len(got), CustomerRowsMax, firstDiff(got, want))
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestLevelOf(t *testing.T) {
	u := events.MustParseUnits
	for _, c := range []struct {
		committed, limit string
		exhausted        bool
		want             string
	}{
		{"74.99", "100", false, LevelOK},
		{"75", "100", false, LevelWarn},
		{"89.999999999999999999", "100", false, LevelWarn},
		{"90", "100", false, LevelCritical},
		{"99.9", "100", false, LevelCritical},
		{"100", "100", true, LevelExhausted},
		{"0", "0", true, LevelExhausted},
	} {
		if got := levelOf(u(c.committed), u(c.limit), c.exhausted); got != c.want {
			t.Errorf("levelOf(%s of %s, exhausted %v): got %s, want %s", c.committed, c.limit, c.exhausted, got, c.want)
		}
	}
}

// TestTableCacheAges: the cached table is served for TableCacheAge after
// it was put, not from then on, not once invalidated, and a put makes it
// fresh again.
func TestTableCacheAges(t *testing.T) {
	at := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	first, second := &Table{Seq: 1}, &Table{Seq: 2}
	var c tableCache
	check := func(step string, now time.Time, want *Table) {
		t.Helper()
		if got := c.get(now); got != want {
			t.Errorf("%s: got %+v, want %+v", step, got, want)
		}
	}
	check("empty", at, nil)
	c.put(first, at)
	check("just put", at, first)
	check("fresh", at.Add(TableCacheAge-time.Nanosecond), first)
	check("expired", at.Add(TableCacheAge), nil)
	check("expired long ago", at.Add(time.Hour), nil)
	c.invalidate()
	check("invalidated", at, nil)
	c.put(second, at.Add(time.Hour))
	check("put after the invalidation", at.Add(time.Hour), second)
	check("fresh after the new put", at.Add(time.Hour+TableCacheAge-time.Nanosecond), second)
	check("expired after the new put", at.Add(time.Hour+TableCacheAge), nil)
	c.invalidate()
	c.invalidate()
	check("invalidated twice", at.Add(time.Hour), nil)
}

// A customer whose usage is funded by grants is measured against the
// grants too: 150 used of a 100 allowance with 900 left in grants is fine.
func TestLevelCountsGrants(t *testing.T) {
	u := events.MustParseUnits
	st := &ledger.StatusReply{CustomerID: "c", Limit: u("100"), Used: u("150"), GrantsUsed: u("50"),
		GrantsRemaining: u("900"), Remaining: events.SignedOf(u("850"))}
	if got := rowOf(st).Level; got != LevelOK {
		t.Errorf("level %s, want %s", got, LevelOK)
	}
	st.GrantsRemaining = u("10")
	if got := rowOf(st).Level; got != LevelCritical {
		t.Errorf("with 10 left in grants: level %s, want %s", got, LevelCritical)
	}
}
