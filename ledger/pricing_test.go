package ledger_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/prices"
)

// listV1 prices model m at rates float64 gets wrong: 0.1 + 0.2 per million
// is not 0.3 in binary, and 1,200 x 3/M + 400 x 15/M must be exactly 0.0096.
const listV1 = `{"list":"default","version":"v1","currency":"USD","models":[
 {"id":"m","provider":"acme","aliases":["m-latest"],"rates":{"input":"3","output":"15","cache_read":"0.3","cache_write":"3.75","cache_write_1h":"6"},
  "tiers":[{"above_input_tokens":200000,"rates":{"input":"6","output":"22.5"}}],
  "service_tiers":{"flex":{"rates":{"input":"1.5","output":"7.5"}}}},
 {"id":"cheap","rates":{"input":"0.1","output":"0.2"},"request_fee":"0.0001"}]}`

func (f *fixture) setPrices(body string) (*ledger.PricesReply, []*events.Envelope) {
	f.t.Helper()
	l, err := prices.Parse([]byte(body))
	if err != nil {
		f.t.Fatalf("parse list: %v", err)
	}
	reply, evs, err := f.s.SetPrices(l, f.now)
	if err != nil {
		f.t.Fatalf("SetPrices: %v", err)
	}
	f.log = append(f.log, evs...)
	return reply, evs
}

func tokens(n int64) *int64 { return &n }

func TestRecordWithUsageIsChargedExactly(t *testing.T) {
	f := newFixture(t)
	f.setPrices(listV1)
	f.budget("c", "100", "month")
	for _, tc := range []struct {
		name  string
		usage events.Usage
		want  string
		desc  string
	}{
		{"plain", events.Usage{Model: "m", InputTokens: tokens(1200), OutputTokens: tokens(400)}, "0.0096",
			"1,200 input x 3/M + 400 output x 15/M = 0.0096 (m, list default v1)"},
		{"alias, any case", events.Usage{Model: "M-Latest", InputTokens: tokens(1200), OutputTokens: tokens(400)}, "0.0096", ""},
		// 1,000 prompt tokens: 100 read from cache, 300 written (100 of them
		// for an hour); the rest at the input rate.
		{"cached", events.Usage{Model: "m", InputTokens: tokens(1000), OutputTokens: tokens(10), CacheReadTokens: tokens(100),
			CacheWriteTokens: tokens(300), CacheWrite1hTokens: tokens(100)}, "0.00333",
			"600 input x 3/M + 100 cache read x 0.3/M + 200 cache write x 3.75/M + 100 cache write 1h x 6/M + 10 output x 15/M = 0.00333 (m, list default v1)"},
		{"long context", events.Usage{Model: "m", InputTokens: tokens(200001), OutputTokens: tokens(1)}, "1.2000285", ""},
		{"at the threshold", events.Usage{Model: "m", InputTokens: tokens(200000), OutputTokens: tokens(1)}, "0.600015", ""},
		{"service tier", events.Usage{Model: "m", InputTokens: tokens(1000), OutputTokens: tokens(1000), ServiceTier: "flex"}, "0.009", ""},
		{"float64 gets this wrong", events.Usage{Model: "cheap", InputTokens: tokens(1_000_000), OutputTokens: tokens(1_000_000)}, "0.3001",
			"1,000,000 input x 0.1/M + 1,000,000 output x 0.2/M + request fee 0.0001 = 0.3001 (cheap, list default v1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr, evs := f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Usage: &tc.usage})
			if got := rr.ChargedUnits.String(); got != tc.want {
				t.Fatalf("charged %s, want %s", got, tc.want)
			}
			rec := evs[0].Data.(*events.Recorded)
			if rec.Pricing == nil || rec.Pricing.Version != "v1" || rec.Unpriced != "" || rec.Usage == nil {
				t.Fatalf("event pricing %+v unpriced %q usage %+v", rec.Pricing, rec.Unpriced, rec.Usage)
			}
			if tc.desc != "" && rec.Pricing.Describe() != tc.desc {
				t.Fatalf("breakdown %q, want %q", rec.Pricing.Describe(), tc.desc)
			}
		})
	}
	in, out := 1e6*0.1/1e6, 1e6*0.2/1e6
	if got := in + out + 0.0001; got == 0.3001 {
		t.Fatalf("float64 priced the cheap case exactly (%v): it proves nothing", got)
	}
}

// A later price list prices later usage only: old charges keep the
// version they were priced with, and replay (checkReplay) reproduces both.
func TestPriceChangeNeverRewritesOldCharges(t *testing.T) {
	f := newFixture(t)
	f.setPrices(listV1)
	f.budget("c", "100", "month")
	u := events.Usage{Model: "m", InputTokens: tokens(100_000), OutputTokens: tokens(0)}
	first, _ := f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Usage: &u})
	f.setPrices(strings.ReplaceAll(strings.Replace(listV1, `"version":"v1"`, `"version":"v2"`, 1), `"input":"3"`, `"input":"4"`))
	second, _ := f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Usage: &u})
	if first.ChargedUnits.String() != "0.3" || second.ChargedUnits.String() != "0.4" {
		t.Fatalf("charged %s then %s, want 0.3 then 0.4", first.ChargedUnits, second.ChargedUnits)
	}
	if first.Pricing.Version != "v1" || second.Pricing.Version != "v2" {
		t.Fatalf("versions %s, %s", first.Pricing.Version, second.Pricing.Version)
	}
	if got := f.status("c").Used.String(); got != "0.7" {
		t.Fatalf("used %s, want 0.7", got)
	}
	// The snapshot of a replayed state equals the live one, price lists
	// included.
	var live, replayed bytes.Buffer
	if err := f.s.WriteSnapshot(&live, ledger.SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	r := replay(t, encodeAll(t, f.log))
	if err := r.WriteSnapshot(&replayed, ledger.SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(live.Bytes(), replayed.Bytes()) {
		t.Fatal("replayed state's snapshot differs from the live state's")
	}
	back, _, err := ledger.ReadSnapshot(bytes.NewReader(live.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	lists, err := back.PriceLists("default")
	if err != nil || lists.Lists[0].Version != "v2" {
		t.Fatalf("restored price list: %+v, %v", lists, err)
	}
}

func TestSetPricesVersions(t *testing.T) {
	f := newFixture(t)
	if r, evs := f.setPrices(listV1); !r.Changed || len(evs) != 1 {
		t.Fatalf("first set: %+v, %d events", r, len(evs))
	}
	if r, evs := f.setPrices(listV1); r.Changed || len(evs) != 0 {
		t.Fatalf("same version again: %+v, %d events; want unchanged and nothing appended", r, len(evs))
	}
	l, _ := prices.Parse([]byte(strings.Replace(listV1, `"output":"15"`, `"output":"16"`, 1)))
	if _, evs, err := f.s.SetPrices(l, f.now); ledger.ErrorCode(err) != ledger.CodeConflict || len(evs) != 0 {
		t.Fatalf("other prices under the same version: %v, %d events; want conflict", err, len(evs))
	}
}

// Usage that cannot be priced is still recorded, never at a silent zero.
func TestUnpricedUsage(t *testing.T) {
	f := newFixture(t)
	f.setPrices(listV1)
	f.budget("c", "100", "month")
	unknown := events.Usage{Model: "gpt-unknown", InputTokens: tokens(10), OutputTokens: tokens(10)}
	id := f.reserve("c", "a", "2.5", "")
	rr, evs := f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", ReservationID: id, Usage: &unknown})
	rec := evs[0].Data.(*events.Recorded)
	if rr.ChargedUnits.String() != "2.5" || rec.Pricing != nil || !strings.Contains(rec.Unpriced, `no model "gpt-unknown"`) {
		t.Fatalf("charged %s, pricing %+v, unpriced %q; want the hold (2.5) and why", rr.ChargedUnits, rec.Pricing, rec.Unpriced)
	}
	// The units given beside it are charged instead of the hold.
	rr, _ = f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Usage: &unknown, Units: up("0.7")})
	if rr.ChargedUnits.String() != "0.7" || rr.Unpriced == "" {
		t.Fatalf("charged %s, unpriced %q", rr.ChargedUnits, rr.Unpriced)
	}
	// A tier with no rate, and usage without output, are unpriced too.
	for _, u := range []events.Usage{
		{Model: "m", InputTokens: tokens(1), OutputTokens: tokens(1), ServiceTier: "priority"},
		{Model: "m", InputTokens: tokens(1)},
	} {
		rr, _ = f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Usage: &u, Units: up("1")})
		if rr.Unpriced == "" {
			t.Fatalf("usage %+v priced: %+v", u, rr.Pricing)
		}
	}
	if got := f.status("c").UnpricedRecords; got != 4 {
		t.Fatalf("unpriced_records %d, want 4", got)
	}
	// With no hold and no units there is nothing honest to charge.
	f.fail(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Usage: &unknown}, ledger.CodeInvalidArgument)
}

func TestUsageValidation(t *testing.T) {
	f := newFixture(t)
	f.setPrices(listV1)
	f.budget("c", "100", "month")
	for name, u := range map[string]events.Usage{
		"cache reads past input":     {Model: "m", InputTokens: tokens(10), OutputTokens: tokens(1), CacheReadTokens: tokens(11)},
		"1h writes past all writes":  {Model: "m", InputTokens: tokens(10), OutputTokens: tokens(1), CacheWriteTokens: tokens(2), CacheWrite1hTokens: tokens(3)},
		"reasoning past output":      {Model: "m", InputTokens: tokens(10), OutputTokens: tokens(1), ReasoningTokens: tokens(2)},
		"negative tokens":            {Model: "m", InputTokens: tokens(-1), OutputTokens: tokens(1)},
		"more than TokensMax tokens": {Model: "m", InputTokens: tokens(events.TokensMax + 1), OutputTokens: tokens(1)},
		"no model":                   {InputTokens: tokens(1), OutputTokens: tokens(1)},
	} {
		t.Run(name, func(t *testing.T) {
			f.fail(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Usage: &u}, ledger.CodeInvalidArgument)
		})
	}
	f.fail(&ledger.RecordRequest{CustomerID: "c", AgentID: "a"}, ledger.CodeInvalidArgument) // neither units nor usage
	f.fail(&ledger.BudgetRequest{CustomerID: "c", Limit: up("1"), Period: "month", PriceList: "pro"}, ledger.CodeInvalidArgument)
}

func TestPreflightWithUsageEstimate(t *testing.T) {
	f := newFixture(t)
	f.setPrices(listV1)
	f.budget("c", "0.01", "month")
	est := &prices.Estimate{Model: "m", InputTokens: tokens(1200), MaxOutputTokens: tokens(400)}
	pr, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", UsageEstimate: est})
	if !pr.Approved || pr.ReservedUnits.String() != "0.0096" || pr.MaxOutputTokens != 400 || pr.EstimatePricing == nil {
		t.Fatalf("preflight %+v; want 0.0096 held for all 400 output tokens", pr)
	}
	if res := evs[0].Data.(*events.Reserved); res.Pricing == nil || res.MaxOutputTokens != 400 {
		t.Fatalf("reserved event %+v", res)
	}
	// 0.0004 is left: a partial hold covers the prompt (0.0036) only if
	// it fits, so ask for 1,000 output tokens of a 100-token prompt.
	small := &prices.Estimate{Model: "m", InputTokens: tokens(100), MaxOutputTokens: tokens(1000)}
	pr, _ = f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", UsageEstimate: small, MinUnits: up("0.0003")})
	// Held 0.0004: 100 x 3/M = 0.0003 for the prompt leaves 0.0001, 6 output tokens at 15/M.
	if !pr.Approved || !pr.Partial || pr.ReservedUnits.String() != "0.0004" || pr.MaxOutputTokens != 6 {
		t.Fatalf("partial preflight %+v; want 0.0004 held, 6 output tokens", pr)
	}
	unknown := &prices.Estimate{Model: "nope", InputTokens: tokens(1), MaxOutputTokens: tokens(1)}
	e := f.fail(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", UsageEstimate: unknown}, ledger.CodeInvalidArgument)
	if !strings.Contains(e.Error(), `"nope"`) || !strings.Contains(e.Error(), `"default"`) {
		t.Fatalf("error %q does not name the model and the list", e)
	}
	// estimated_units beside it is the fallback for a model the list lacks.
	f.budget("d", "10", "month")
	pr, _ = f.preflight(&ledger.PreflightRequest{CustomerID: "d", AgentID: "a", UsageEstimate: unknown, EstimatedUnits: up("2")})
	if !pr.Approved || pr.ReservedUnits.String() != "2" || pr.EstimatePricing != nil {
		t.Fatalf("fallback preflight %+v", pr)
	}
	f.fail(&ledger.PreflightRequest{CustomerID: "d", AgentID: "a",
		UsageEstimate: &prices.Estimate{Model: "m", InputTokens: tokens(1)}}, ledger.CodeInvalidArgument)
}

// A budget may name its own list; its customers' usage is priced by it.
func TestBudgetPriceList(t *testing.T) {
	f := newFixture(t)
	f.setPrices(listV1)
	f.setPrices(strings.Replace(strings.Replace(listV1, `"list":"default"`, `"list":"pro"`, 1), `"input":"3"`, `"input":"2"`, 1))
	f.ok(&ledger.BudgetRequest{CustomerID: "c", Limit: up("100"), Period: "month", PriceList: "pro"})
	rr, _ := f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a",
		Usage: &events.Usage{Model: "m", InputTokens: tokens(100_000), OutputTokens: tokens(0)}})
	if rr.ChargedUnits.String() != "0.2" || rr.Pricing.List != "pro" {
		t.Fatalf("charged %s with %+v; want 0.2 from list pro", rr.ChargedUnits, rr.Pricing)
	}
	if got := f.status("c").PriceList; got != "pro" {
		t.Fatalf("status price_list %q", got)
	}
}
