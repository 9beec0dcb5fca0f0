package prices_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/prices"
)

func n(v int64) *int64 { return &v }

// lineText writes a charge's lines as "kind:tokens@rate ...".
func lineText(c prices.Charge) string {
	var s []string
	for _, ln := range c.Lines {
		s = append(s, string(ln.Kind)+":"+strconv.FormatInt(ln.Tokens, 10)+"@"+ln.Rate.String())
	}
	return strings.Join(s, " ")
}

func TestPrice(t *testing.T) {
	l := mustList(t, testList)
	for _, tc := range []struct {
		name      string
		u         prices.Usage
		lines     string
		total     string
		above     int64
		tier, fee string
	}{
		{name: "input and output",
			u:     prices.Usage{Model: "claude-sonnet", InputTokens: n(1200), OutputTokens: n(400)},
			lines: "input:1200@3 output:400@15", total: "0.0096"},
		{name: "cache reads leave the input rate",
			u:     prices.Usage{Model: "claude-sonnet", InputTokens: n(5000), CacheReadTokens: n(3000), OutputTokens: n(200)},
			lines: "input:2000@3 cache_read:3000@0.3 output:200@15", total: "0.0099"},
		{name: "5-minute writes at cache_write, 1-hour at cache_write_1h",
			u:     prices.Usage{Model: "claude-sonnet", InputTokens: n(10000), CacheReadTokens: n(1000), CacheWriteTokens: n(6000), CacheWrite1hTokens: n(2500), OutputTokens: n(500)},
			lines: "input:3000@3 cache_read:1000@0.3 cache_write:3500@3.75 cache_write_1h:2500@6 output:500@15", total: "0.044925"},
		{name: "no cache rates: every prompt token at the input rate",
			u:     prices.Usage{Model: "plain", InputTokens: n(8000), CacheReadTokens: n(3000), CacheWriteTokens: n(3000), CacheWrite1hTokens: n(1000), OutputTokens: n(100), ReasoningTokens: n(100)},
			lines: "input:8000@0.1 output:100@0.2", total: "0.00082"},
		{name: "no cache_write_1h rate: 1-hour writes at cache_write",
			u:     prices.Usage{Model: "writes", InputTokens: n(3000), CacheWriteTokens: n(1000), CacheWrite1hTokens: n(400), OutputTokens: n(10)},
			lines: "input:2000@1 cache_write:1000@1.25 output:10@2", total: "0.00327"},
		{name: "every kind rated: cache_write itself keeps no tokens",
			u:     prices.Usage{Model: "every-kind", InputTokens: n(10000), CacheReadTokens: n(500), CacheWriteTokens: n(6000), CacheWrite1hTokens: n(2500), OutputTokens: n(3000), ReasoningTokens: n(2500)},
			lines: "input:3500@1 cache_read:500@0.1 cache_write_5m:3500@1.25 cache_write_1h:2500@2.5 output:500@4 reasoning:2500@8", total: "0.036175"},
		{name: "reasoning without its own rate is output",
			u:     prices.Usage{Model: "claude-sonnet", InputTokens: n(0), OutputTokens: n(3000), ReasoningTokens: n(2500)},
			lines: "output:3000@15", total: "0.045"},
		{name: "no tokens",
			u:     prices.Usage{Model: "plain", InputTokens: n(0), OutputTokens: n(0)},
			lines: "", total: "0"},
		{name: "at the long-context threshold: base rates",
			u:     prices.Usage{Model: "claude-sonnet", InputTokens: n(200000), OutputTokens: n(1000)},
			lines: "input:200000@3 output:1000@15", total: "0.615"},
		{name: "one above the threshold: tier rates for every token",
			u:     prices.Usage{Model: "claude-sonnet", InputTokens: n(200001), CacheReadTokens: n(1), CacheWriteTokens: n(2), CacheWrite1hTokens: n(1), OutputTokens: n(1000)},
			lines: "input:199998@6 cache_read:1@0.6 cache_write:1@7.5 cache_write_1h:1@12 output:1000@22.5", total: "1.2225081", above: 200000},
		{name: "per-kind tiers: the first only",
			u:     prices.Usage{Model: "stepped", InputTokens: n(150), OutputTokens: n(10)},
			lines: "input:150@2 output:10@10", total: "0.0004", above: 100},
		{name: "per-kind tiers: both",
			u:     prices.Usage{Model: "stepped", InputTokens: n(201), OutputTokens: n(10)},
			lines: "input:201@2 output:10@30", total: "0.000702", above: 200},
		{name: "request fee",
			u:     prices.Usage{Model: "gpt", InputTokens: n(1000), OutputTokens: n(1000)},
			lines: "input:1000@2 output:1000@8", total: "0.022", fee: "0.012"},
		{name: "service tier, any case, replaces rates and fee",
			u:     prices.Usage{Model: "gpt", InputTokens: n(1000), CacheReadTokens: n(200), OutputTokens: n(1000), ServiceTier: "Flex"},
			lines: "input:800@1 cache_read:200@0.25 output:1000@4", total: "0.00485", tier: "flex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.u.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			c, err := l.Price(tc.u)
			if err != nil {
				t.Fatalf("Price: %v", err)
			}
			if got := lineText(c); got != tc.lines {
				t.Errorf("lines %q, want %q", got, tc.lines)
			}
			if got := c.Total.String(); got != tc.total {
				t.Errorf("total %s, want %s", got, tc.total)
			}
			if c.AboveInputTokens != tc.above || c.ServiceTier != tc.tier {
				t.Errorf("above %d tier %q, want %d %q", c.AboveInputTokens, c.ServiceTier, tc.above, tc.tier)
			}
			fee := ""
			if c.RequestFee != nil {
				fee = c.RequestFee.String()
			}
			if fee != tc.fee {
				t.Errorf("request fee %q, want %q", fee, tc.fee)
			}
		})
	}
}

// TestPriceIsExactWhereFloatIsNot prices rates and counts that binary
// floating point gets wrong; the float computations are here only to show
// the difference, never to price.
func TestPriceIsExactWhereFloatIsNot(t *testing.T) {
	l := mustList(t, `{"list": "l", "version": "1", "models": [
	  {"id": "tenths", "rates": {"input": "0.1", "output": "0.2"}},
	  {"id": "fifteen", "rates": {"input": "0.15", "output": "1"}},
	  {"id": "elevenths", "rates": {"input": "1.1", "output": "2.2"}}]}`)
	for _, tc := range []struct {
		model    string
		in, out  int64
		inRate   float64
		outRate  float64
		want     string
		floatTxt string
	}{
		{"tenths", 1_000_000, 1_000_000, 0.1, 0.2, "0.3", "0.30000000000000004"},
		{"tenths", 3, 3, 0.1, 0.2, "0.0000009", "9.000000000000001e-07"},
		{"fifteen", 123_456_789, 0, 0.15, 1, "18.51851835", "18.518518349999997"},
		{"elevenths", 100, 100, 1.1, 2.2, "0.00033", "0.00033000000000000005"},
	} {
		c, err := l.Price(prices.Usage{Model: tc.model, InputTokens: &tc.in, OutputTokens: &tc.out})
		if err != nil {
			t.Fatal(err)
		}
		f := float64(tc.in)*tc.inRate/1e6 + float64(tc.out)*tc.outRate/1e6
		if got := strconv.FormatFloat(f, 'g', -1, 64); got != tc.floatTxt {
			t.Errorf("float64 gives %s here, the test expected %s", got, tc.floatTxt)
		}
		if got, want := c.Total, events.MustParseUnits(tc.want); got.Cmp(want) != 0 {
			t.Errorf("%s: %d in + %d out = %s, want %s exactly", tc.model, tc.in, tc.out, got, want)
		}
	}
}

func TestPriceUnpriced(t *testing.T) {
	l := mustList(t, testList)
	for _, tc := range []struct {
		name string
		u    prices.Usage
		want string
	}{
		{"unknown model", prices.Usage{Model: "gpt-9", InputTokens: n(1), OutputTokens: n(1)}, `has no model "gpt-9"`},
		{"provider mismatch", prices.Usage{Model: "gpt", Provider: "azure", InputTokens: n(1), OutputTokens: n(1)}, `no model "gpt" of provider "azure"`},
		{"unknown service tier", prices.Usage{Model: "gpt", InputTokens: n(1), OutputTokens: n(1), ServiceTier: "priority"}, `no rates for service tier "priority"`},
		{"no input count", prices.Usage{Model: "gpt", OutputTokens: n(1)}, "does not report input_tokens"},
		{"no output count", prices.Usage{Model: "gpt", InputTokens: n(1)}, "does not report output_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Price(tc.u)
			var up *prices.Unpriced
			if !errors.As(err, &up) {
				t.Fatalf("Price: %v, want *prices.Unpriced", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestPriceBaseServiceTiers: the names providers give their standard tier
// price at the model's own rates.
func TestPriceBaseServiceTiers(t *testing.T) {
	l := mustList(t, testList)
	for _, tier := range []string{"", "default", "Standard", "AUTO"} {
		c, err := l.Price(prices.Usage{Model: "gpt", InputTokens: n(1000), OutputTokens: n(1000), ServiceTier: tier})
		if err != nil {
			t.Fatalf("tier %q: %v", tier, err)
		}
		if c.Total.String() != "0.022" || c.ServiceTier != "" {
			t.Errorf("tier %q: total %s, service tier %q; want 0.022 at base rates", tier, c.Total, c.ServiceTier)
		}
	}
}

func TestUsageValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    prices.Usage
		want []string
	}{
		{"valid", prices.Usage{Model: "m", InputTokens: n(10), CacheReadTokens: n(4), CacheWriteTokens: n(6), CacheWrite1hTokens: n(6), OutputTokens: n(3), ReasoningTokens: n(3)}, nil},
		{"missing counts are not errors", prices.Usage{Model: "m"}, nil},
		{"empty model", prices.Usage{Model: " "}, []string{"model: empty"}},
		{"cache beyond input", prices.Usage{Model: "m", InputTokens: n(10), CacheReadTokens: n(5), CacheWriteTokens: n(6)}, []string{"cache_read_tokens + cache_write_tokens (11) exceed input_tokens (10)"}},
		{"1h beyond writes", prices.Usage{Model: "m", CacheWriteTokens: n(2), CacheWrite1hTokens: n(3)}, []string{"cache_write_1h_tokens (3) exceed cache_write_tokens (2)"}},
		{"1h without writes", prices.Usage{Model: "m", CacheWrite1hTokens: n(1)}, []string{"cache_write_1h_tokens (1) exceed cache_write_tokens (0)"}},
		{"reasoning beyond output", prices.Usage{Model: "m", OutputTokens: n(1), ReasoningTokens: n(2)}, []string{"reasoning_tokens (2) exceed output_tokens (1)"}},
		{"out of bounds, all reported", prices.Usage{Model: "m", InputTokens: n(-1), OutputTokens: n(prices.TokensMax + 1)},
			[]string{"input_tokens: -1, want 0 to", "output_tokens: 1000000000001, want 0 to"}},
		{"contradictions, all reported", prices.Usage{Model: "m", InputTokens: n(1), CacheReadTokens: n(2), CacheWriteTokens: n(1), CacheWrite1hTokens: n(2), OutputTokens: n(0), ReasoningTokens: n(1)},
			[]string{"exceed input_tokens", "exceed cache_write_tokens", "exceed output_tokens"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.u.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, prices.ErrUsage) {
				t.Fatalf("Validate: %v, want ErrUsage", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to say %q", err, w)
				}
			}
		})
	}
}

func TestEstimateValidate(t *testing.T) {
	for _, e := range []prices.Estimate{
		{Model: "gpt", InputTokens: n(1)},
		{Model: "gpt", MaxOutputTokens: n(1)},
	} {
		if err := e.Validate(); !errors.Is(err, prices.ErrUsage) || !strings.Contains(err.Error(), "both required") {
			t.Errorf("Validate(%+v): %v, want both counts required", e, err)
		}
	}
	if err := (&prices.Estimate{Model: "gpt", InputTokens: n(1), MaxOutputTokens: n(0)}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestOutputTokensFitting: gpt with 1,000 input tokens costs 0.014 before
// any output (0.002 of input and the 0.012 request fee), then 0.000008 an
// output token.
func TestOutputTokensFitting(t *testing.T) {
	l := mustList(t, testList)
	for _, tc := range []struct {
		held string
		max  int64
		want int64
	}{
		{"1", 1000, 1000},          // fits all
		{"0.022", 1000, 1000},      // fits all, exactly
		{"0.021999999", 1000, 999}, // one short of all
		{"0.018", 1000, 500},       // partial, exactly on a token
		{"0.0180079", 1000, 500},   // partial, between tokens
		{"0.014008", 1000, 1},
		{"0.014", 1000, 0}, // the prompt and fee exactly, no output
		{"0.013", 1000, 0}, // not even the prompt
		{"0", 0, 0},
	} {
		e := prices.Estimate{Model: "gpt", InputTokens: n(1000), MaxOutputTokens: n(tc.max)}
		got, err := l.OutputTokensFitting(e, events.MustParseUnits(tc.held))
		if err != nil {
			t.Fatalf("held %s: %v", tc.held, err)
		}
		if got != tc.want {
			t.Errorf("held %s, max %d: %d output tokens fit, want %d", tc.held, tc.max, got, tc.want)
		}
	}
	if _, err := l.OutputTokensFitting(prices.Estimate{Model: "nope", InputTokens: n(1), MaxOutputTokens: n(1)}, events.MustParseUnits("1")); err == nil {
		t.Error("an unknown model fits output tokens")
	}
}

func TestDescribe(t *testing.T) {
	l := mustList(t, testList)
	for _, tc := range []struct {
		u    prices.Usage
		want string
	}{
		{prices.Usage{Model: "sonnet-latest", InputTokens: n(1200), OutputTokens: n(400)},
			"1,200 input x 3/M + 400 output x 15/M = 0.0096 (claude-sonnet, list test v1)"},
		{prices.Usage{Model: "claude-sonnet", InputTokens: n(1234567), CacheWriteTokens: n(1000), CacheWrite1hTokens: n(1000), OutputTokens: n(10)},
			"1,233,567 input x 6/M + 1,000 cache write 1h x 12/M + 10 output x 22.5/M = 7.413627 (long-context rates above 200,000 input tokens; claude-sonnet, list test v1)"},
		{prices.Usage{Model: "gpt", InputTokens: n(100), OutputTokens: n(0), ServiceTier: "flex"},
			"100 input x 1/M = 0.0001 (service tier flex; gpt, list test v1)"},
		{prices.Usage{Model: "gpt", InputTokens: n(0), OutputTokens: n(0)},
			"request fee 0.012 = 0.012 (gpt, list test v1)"},
		{prices.Usage{Model: "plain", InputTokens: n(0), OutputTokens: n(0)},
			"0 tokens = 0 (plain, list test v1)"},
	} {
		c, err := l.Price(tc.u)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Describe(); got != tc.want {
			t.Errorf("Describe:\n got %s\nwant %s", got, tc.want)
		}
	}
}
