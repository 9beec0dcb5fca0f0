package prices_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/prices"
)

// testList prices every case of these tests: a model with cache and
// long-context rates, one with input and output only, one with every kind,
// one with a request fee and a service tier, and two small ones for the
// leaf rule and per-kind tiers.
const testList = `{"list": "test", "version": "v1", "currency": "USD", "models": [
 {"id": "claude-sonnet", "provider": "anthropic", "aliases": ["Sonnet-Latest"],
  "rates": {"input": "3", "output": "15", "cache_read": "0.3", "cache_write": "3.75", "cache_write_1h": "6"},
  "tiers": [{"above_input_tokens": 200000, "rates": {"input": "6", "output": "22.5", "cache_read": "0.6", "cache_write": "7.5", "cache_write_1h": "12"}}]},
 {"id": "plain", "rates": {"input": "0.1", "output": "0.2"}},
 {"id": "every-kind", "provider": "x", "rates": {"input": "1", "cache_read": "0.1", "cache_write": "2", "cache_write_5m": "1.25", "cache_write_1h": "2.5", "output": "4", "reasoning": "8"}},
 {"id": "writes", "provider": "x", "rates": {"input": "1", "cache_write": "1.25", "output": "2"}},
 {"id": "gpt", "provider": "openai", "rates": {"input": "2", "output": "8", "cache_read": "0.5"}, "request_fee": "0.012",
  "service_tiers": {"flex": {"rates": {"input": "1", "output": "4", "cache_read": "0.25"}}}},
 {"id": "stepped", "rates": {"input": "1", "output": "10"},
  "tiers": [{"above_input_tokens": 100, "rates": {"input": "2"}}, {"above_input_tokens": 200, "rates": {"output": "30"}}]}
]}`

func mustList(t *testing.T, js string) *prices.List {
	t.Helper()
	l, err := prices.Parse([]byte(js))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return l
}

// oneModel is a list of one model given as JSON, to test one rule.
func oneModel(model string) string {
	return `{"list": "l", "version": "1", "models": [` + model + `]}`
}

func TestParseRejects(t *testing.T) {
	long := strings.Repeat("m", prices.NameLenMax+1)
	many := make([]string, prices.AliasesMax+1)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprintf("a%d", i))
	}
	tiers := make([]string, prices.TiersMax+1)
	for i := range tiers {
		tiers[i] = fmt.Sprintf(`{"above_input_tokens": %d, "rates": {"input": "2"}}`, (i+1)*1000)
	}
	for _, tc := range []struct {
		name, js, want string
	}{
		{"not JSON", `{"list":`, "invalid price list"},
		{"unknown field", `{"list": "l", "version": "1", "models": [], "extra": 1}`, `unknown field "extra"`},
		{"trailing data", oneModel(`{"id": "m", "rates": {"input": "1"}}`) + ` {}`, "trailing data"},
		{"rate as a float is still exact text", oneModel(`{"id": "m", "rates": {"input": 1e400}}`), "invalid"},
		{"empty list name", `{"list": " ", "version": "1", "models": [{"id": "m", "rates": {"input": "1"}}]}`, "list: empty"},
		{"empty version", `{"list": "l", "version": "", "models": [{"id": "m", "rates": {"input": "1"}}]}`, "version: empty"},
		{"no models", `{"list": "l", "version": "1", "models": []}`, "at least one model"},
		{"long id", oneModel(`{"id": "` + long + `", "rates": {"input": "1"}}`), fmt.Sprintf("%d bytes, at most %d", prices.NameLenMax+1, prices.NameLenMax)},
		{"control character", oneModel(`{"id": "m\n", "rates": {"input": "1"}}`), "control characters"},
		{"too many aliases", oneModel(`{"id": "m", "aliases": [` + strings.Join(many, ",") + `], "rates": {"input": "1"}}`), fmt.Sprintf("at most %d", prices.AliasesMax)},
		{"duplicate name across case", `{"list": "l", "version": "1", "models": [{"id": "GPT-4o", "rates": {"input": "1"}}, {"id": "m", "aliases": ["gpt-4O"], "rates": {"input": "1"}}]}`, `name "gpt-4O" is also model "GPT-4o"'s`},
		{"no rates and no fee", oneModel(`{"id": "m", "rates": {}}`), "no rates and no request_fee"},
		{"unknown kind", oneModel(`{"id": "m", "rates": {"input": "1", "audio": "2"}}`), `unknown token kind "audio"`},
		{"child without parent", oneModel(`{"id": "m", "rates": {"input": "1", "cache_write_1h": "6"}}`), "cache_write_1h: needs a rate for cache_write too"},
		{"reasoning without output", oneModel(`{"id": "m", "rates": {"input": "1", "reasoning": "6"}}`), "reasoning: needs a rate for output too"},
		{"negative rate", oneModel(`{"id": "m", "rates": {"input": "-1"}}`), "invalid"},
		{"rate above RateMax", oneModel(`{"id": "m", "rates": {"input": "1000000.5"}}`), fmt.Sprintf("want 0 to %d", prices.RateMax)},
		{"rate too fine", oneModel(`{"id": "m", "rates": {"input": "0.0000000000001"}}`), fmt.Sprintf("13 fractional digits, at most %d", prices.RateFractionDigitsMax)},
		{"fee above RateMax", oneModel(`{"id": "m", "rates": {"input": "1"}, "request_fee": "2000000"}`), "request_fee: 2000000, want 0 to"},
		{"tier at zero", oneModel(`{"id": "m", "rates": {"input": "1"}, "tiers": [{"above_input_tokens": 0, "rates": {"input": "2"}}]}`), "above_input_tokens: 0, want 1 to"},
		{"tiers out of order", oneModel(`{"id": "m", "rates": {"input": "1"}, "tiers": [{"above_input_tokens": 200, "rates": {"input": "2"}}, {"above_input_tokens": 200, "rates": {"input": "3"}}]}`), "tiers must be in increasing order"},
		{"tier without rates", oneModel(`{"id": "m", "rates": {"input": "1"}, "tiers": [{"above_input_tokens": 5, "rates": {}}]}`), "a tier needs at least one rate"},
		{"tier rate the model lacks", oneModel(`{"id": "m", "rates": {"input": "1"}, "tiers": [{"above_input_tokens": 5, "rates": {"output": "2"}}]}`), "a tier may only change a rate the model has"},
		{"too many tiers", oneModel(`{"id": "m", "rates": {"input": "1"}, "tiers": [` + strings.Join(tiers, ",") + `]}`), fmt.Sprintf("%d tiers, at most %d", prices.TiersMax+1, prices.TiersMax)},
		{"base service tier", oneModel(`{"id": "m", "rates": {"input": "1"}, "service_tiers": {"Standard": {"rates": {"input": "1"}}}}`), "service_tiers.Standard: this tier is priced by the model's own rates"},
		{"service tiers differing in case", oneModel(`{"id": "m", "rates": {"input": "1"}, "service_tiers": {"flex": {"rates": {"input": "1"}}, "Flex": {"rates": {"input": "2"}}}}`), "service_tiers.flex: the same tier as Flex"},
		{"service tier without rates", oneModel(`{"id": "m", "rates": {"input": "1"}, "service_tiers": {"flex": {"rates": {}}}}`), "service_tiers.flex: no rates and no request_fee"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := prices.Parse([]byte(tc.js))
			if err == nil {
				t.Fatalf("Parse accepted it: %d models", len(l.Models))
			}
			if !errors.Is(err, prices.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestParseRejectsTooManyModels(t *testing.T) {
	models := make([]string, prices.ModelsMax+1)
	for i := range models {
		models[i] = fmt.Sprintf(`{"id": "m%d", "rates": {"input": "1"}}`, i)
	}
	_, err := prices.Parse([]byte(`{"list": "l", "version": "1", "models": [` + strings.Join(models, ",") + `]}`))
	if want := fmt.Sprintf("%d models, at most %d", prices.ModelsMax+1, prices.ModelsMax); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Parse: %v, want %q", err, want)
	}
}

// TestParseReportsEveryProblem: a list with several problems names them
// all in one error, so an operator fixes the list in one pass.
func TestParseReportsEveryProblem(t *testing.T) {
	js := `{"list": "", "version": "1", "models": [
	  {"id": "a", "rates": {"input": "1", "cache_read": "0.00000000000001"}},
	  {"id": "b", "aliases": ["A"], "rates": {"output": "1", "cache_write": "2"}},
	  {"id": "c", "rates": {"input": "1"}, "tiers": [{"above_input_tokens": -1, "rates": {"input": "x"}}]}]}`
	_, err := prices.Parse([]byte(js))
	if err == nil {
		t.Fatal("Parse accepted it")
	}
	// "x" is not a decimal: decoding stops there, before validation.
	if !strings.Contains(err.Error(), "invalid") {
		t.Fatalf("error %q", err)
	}
	js = strings.Replace(js, `"x"`, `"2"`, 1)
	_, err = prices.Parse([]byte(js))
	for _, want := range []string{
		"list: empty",
		"models[0] (a).rates.cache_read: 0.00000000000001 has 14 fractional digits",
		`models[1] (b): name "A" is also model "a"'s`,
		"models[1] (b).rates.cache_write: needs a rate for input too",
		"models[2] (c).tiers[0].above_input_tokens: -1",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to say %q", err, want)
		}
	}
}

func TestLookup(t *testing.T) {
	l := mustList(t, testList)
	for _, tc := range []struct {
		model, provider, wantID string
	}{
		{"claude-sonnet", "", "claude-sonnet"},
		{"sonnet-latest", "", "claude-sonnet"},
		{"SONNET-LATEST", "anthropic", "claude-sonnet"},
		{"  Claude-Sonnet ", "Anthropic", "claude-sonnet"},
		{"claude-sonnet", "openai", ""},
		{"plain", "any-provider", "plain"}, // a model without a provider matches any
		{"gpt", "", "gpt"},
		{"gpt-5", "", ""},
	} {
		m, ok := l.Lookup(tc.model, tc.provider)
		got := ""
		if ok {
			got = m.ID
		}
		if got != tc.wantID {
			t.Errorf("Lookup(%q, %q) = %q, want %q", tc.model, tc.provider, got, tc.wantID)
		}
	}
	if got, want := strings.Join(l.Names(), " "), "claude-sonnet every-kind gpt plain stepped writes"; got != want {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}
