// Package prices turns model token usage into an exact charge from a named,
// versioned price list. It is pure (the standard library, apd through
// events.Units, no clock): the ledger prices a record with it while it
// decides, and stores the charge and its breakdown in the event, so replay
// never prices again and a later price change never rewrites an old charge.
//
// The token kinds and how they nest follow @pydantic/genai-prices, whose
// data the starter list is generated from (scripts/prices): input_tokens
// counts every prompt token, cache reads and writes included; output_tokens
// counts every output token, reasoning included. A kind without a rate of
// its own is charged at its parent's rate (cache writes at the input rate
// when the model has no cache_write rate).
package prices

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/agentbill/agentbill/events"
)

// Bounds on a price list (docs/PROTOCOL.md, "Price lists").
const (
	// ModelsMax bounds the models of one list: the starter list has about
	// 1,000; ten times that leaves room for an operator's own.
	ModelsMax = 10_000
	// AliasesMax bounds the aliases of one model.
	AliasesMax = 32
	// TiersMax bounds the long-context tiers of one model (or service tier).
	TiersMax = 8
	// ServiceTiersMax bounds the service tiers of one model.
	ServiceTiersMax = 8
	// NameLenMax bounds a list name, a version, a model id, an alias, a
	// provider and a service tier name, in bytes.
	NameLenMax = events.UsageNameLenMax
	// ListsMax bounds the named lists one ledger holds.
	ListsMax = 64
	// RateFractionDigitsMax is the finest rate (per million tokens) a list
	// may give: a token costs rate/10^6, and a charge must stay within the
	// 18 fractional digits of any amount (events.UnitsFractionDigitsMax).
	RateFractionDigitsMax = events.UnitsFractionDigitsMax - 6
	// RateMax bounds a rate per million tokens and a request fee.
	RateMax = 1_000_000
	// TokensMax bounds any token count of one request (10^12).
	TokensMax = events.TokensMax
	// DefaultList is the list a budget without price_list prices with.
	DefaultList = "default"
)

// ErrInvalid is wrapped by every error of a list that cannot be set.
var ErrInvalid = errors.New("invalid price list")

// Kind is a kind of token with a rate of its own.
type Kind = events.TokenKind

// The token kinds, in the order a breakdown lists them.
const (
	Input        = events.KindInput
	CacheRead    = events.KindCacheRead
	CacheWrite   = events.KindCacheWrite
	CacheWrite5m = events.KindCacheWrite5m
	CacheWrite1h = events.KindCacheWrite1h
	Output       = events.KindOutput
	Reasoning    = events.KindReasoning
)

// Kinds lists every kind in breakdown order.
var Kinds = []Kind{Input, CacheRead, CacheWrite, CacheWrite5m, CacheWrite1h, Output, Reasoning}

// parentOf is how the kinds nest: a child's tokens are part of its
// parent's count, and are charged at the child's rate when it has one.
var parentOf = map[Kind]Kind{
	CacheRead: Input, CacheWrite: Input,
	CacheWrite5m: CacheWrite, CacheWrite1h: CacheWrite,
	Reasoning: Output,
}

// Rates are decimal prices per million tokens, by kind. A kind missing
// from the map has no rate of its own.
type Rates map[Kind]events.Units

// Tier is a long-context tier: when a request's input_tokens exceed
// AboveInputTokens, the rates it names replace the base rates for every
// token of that kind in the request.
type Tier struct {
	AboveInputTokens int64 `json:"above_input_tokens"`
	Rates            Rates `json:"rates"`
}

// ServiceTier prices a provider's service tier (flex, priority, batch...)
// in place of the model's base rates.
type ServiceTier struct {
	Rates      Rates         `json:"rates"`
	Tiers      []Tier        `json:"tiers,omitempty"`
	RequestFee *events.Units `json:"request_fee,omitempty"`
}

// Model is one model's prices.
type Model struct {
	ID           string                 `json:"id"`
	Provider     string                 `json:"provider,omitempty"`
	Aliases      []string               `json:"aliases,omitempty"`
	Rates        Rates                  `json:"rates"`
	Tiers        []Tier                 `json:"tiers,omitempty"`
	RequestFee   *events.Units          `json:"request_fee,omitempty"`
	ServiceTiers map[string]ServiceTier `json:"service_tiers,omitempty"`
}

// List is a named, versioned price list.
type List struct {
	Name     string  `json:"list"`
	Version  string  `json:"version"`
	Currency string  `json:"currency,omitempty"`
	Note     string  `json:"note,omitempty"`
	Models   []Model `json:"models"`

	byName map[string]*Model
}

// Parse decodes and validates a list from JSON. Amounts are read exactly
// (events.Units), never through float64; unknown fields are errors.
func Parse(b []byte) (*List, error) {
	var l List
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the list", ErrInvalid)
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &l, nil
}

// Validate reports every problem of the list at once, and indexes its
// model names (ids and aliases, case-insensitive) for Lookup.
func (l *List) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	checkName("list", l.Name, bad)
	checkName("version", l.Version, bad)
	if len(l.Models) == 0 {
		bad("models: at least one model is needed")
	}
	if len(l.Models) > ModelsMax {
		bad("models: %d models, at most %d (prices.ModelsMax)", len(l.Models), ModelsMax)
	}
	l.byName = make(map[string]*Model, len(l.Models))
	for i := range l.Models {
		m := &l.Models[i]
		where := fmt.Sprintf("models[%d] (%s)", i, m.ID)
		checkName(where+".id", m.ID, bad)
		if m.Provider != "" {
			checkName(where+".provider", m.Provider, bad)
		}
		if len(m.Aliases) > AliasesMax {
			bad("%s.aliases: %d aliases, at most %d", where, len(m.Aliases), AliasesMax)
		}
		for _, name := range append([]string{m.ID}, m.Aliases...) {
			key := nameKey(name)
			if other, dup := l.byName[key]; dup && other != m {
				bad("%s: name %q is also model %q's; names must be unique in a list", where, name, other.ID)
			}
			l.byName[key] = m
		}
		checkPrices(where, m.Rates, m.Tiers, m.RequestFee, bad)
		if len(m.ServiceTiers) > ServiceTiersMax {
			bad("%s.service_tiers: %d tiers, at most %d", where, len(m.ServiceTiers), ServiceTiersMax)
		}
		// Sorted, so the errors come in the same order every time; names
		// compare case-insensitively, as Price finds them, so two names
		// differing only in case would leave the choice to map order.
		tierNames := make([]string, 0, len(m.ServiceTiers))
		for name := range m.ServiceTiers {
			tierNames = append(tierNames, name)
		}
		sort.Strings(tierNames)
		seenTier := map[string]string{}
		for _, name := range tierNames {
			st := m.ServiceTiers[name]
			checkName(where+".service_tiers", name, bad)
			if isBaseServiceTier(name) {
				bad("%s.service_tiers.%s: this tier is priced by the model's own rates", where, name)
			}
			if other, dup := seenTier[strings.ToLower(name)]; dup {
				bad("%s.service_tiers.%s: the same tier as %s (names are case-insensitive)", where, name, other)
			}
			seenTier[strings.ToLower(name)] = name
			checkPrices(where+".service_tiers."+name, st.Rates, st.Tiers, st.RequestFee, bad)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// checkPrices validates one set of rates with its tiers and fee.
func checkPrices(where string, rates Rates, tiers []Tier, fee *events.Units, bad func(string, ...any)) {
	if len(rates) == 0 && fee == nil {
		bad("%s: no rates and no request_fee", where)
	}
	checkRates(where+".rates", rates, bad)
	if fee != nil {
		checkAmount(where+".request_fee", *fee, events.UnitsFractionDigitsMax, bad)
	}
	if len(tiers) > TiersMax {
		bad("%s.tiers: %d tiers, at most %d", where, len(tiers), TiersMax)
	}
	for i, t := range tiers {
		tw := fmt.Sprintf("%s.tiers[%d]", where, i)
		if t.AboveInputTokens <= 0 || t.AboveInputTokens > TokensMax {
			bad("%s.above_input_tokens: %d, want 1 to %d", tw, t.AboveInputTokens, TokensMax)
		}
		if i > 0 && t.AboveInputTokens <= tiers[i-1].AboveInputTokens {
			bad("%s.above_input_tokens: tiers must be in increasing order", tw)
		}
		if len(t.Rates) == 0 {
			bad("%s.rates: a tier needs at least one rate", tw)
		}
		for k, r := range t.Rates {
			if _, ok := rates[k]; !ok {
				bad("%s.rates.%s: a tier may only change a rate the model has", tw, k)
			}
			checkAmount(fmt.Sprintf("%s.rates.%s", tw, k), r, RateFractionDigitsMax, bad)
		}
	}
}

// checkRates: every kind known, every rate in bounds, and every kind with
// a rate has its parent rated too (as genai-prices requires), so no token
// is left without a price.
func checkRates(where string, rates Rates, bad func(string, ...any)) {
	for _, k := range sortedKinds(rates) {
		if !known(k) {
			bad("%s: unknown token kind %q (known: %s)", where, k, kindNames())
			continue
		}
		if p, ok := parentOf[k]; ok {
			if _, has := rates[p]; !has {
				bad("%s.%s: needs a rate for %s too (its tokens are part of %s)", where, k, p, p)
			}
		}
		checkAmount(where+"."+string(k), rates[k], RateFractionDigitsMax, bad)
	}
}

func checkAmount(where string, u events.Units, digitsMax int, bad func(string, ...any)) {
	if u.Sign() < 0 || u.Cmp(events.NewUnits(RateMax, 0)) > 0 {
		bad("%s: %s, want 0 to %d", where, u, RateMax)
	}
	if d := u.FractionDigits(); d > digitsMax {
		bad("%s: %s has %d fractional digits, at most %d", where, u, d, digitsMax)
	}
}

func checkName(where, s string, bad func(string, ...any)) {
	switch {
	case strings.TrimSpace(s) == "":
		bad("%s: empty", where)
	case len(s) > NameLenMax:
		bad("%s: %d bytes, at most %d", where, len(s), NameLenMax)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		bad("%s: control characters", where)
	}
}

func known(k Kind) bool {
	for _, x := range Kinds {
		if k == x {
			return true
		}
	}
	return false
}

func kindNames() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func sortedKinds(r Rates) []Kind {
	ks := make([]Kind, 0, len(r))
	for k := range r {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i] < ks[j] })
	return ks
}

// nameKey is how model names compare: case-insensitive, spaces trimmed.
func nameKey(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// baseServiceTiers are the names providers report for their standard tier,
// priced by a model's own rates.
var baseServiceTiers = []string{"", "default", "standard", "auto"}

func isBaseServiceTier(s string) bool {
	for _, b := range baseServiceTiers {
		if strings.EqualFold(s, b) {
			return true
		}
	}
	return false
}

// Lookup finds a model by id or alias (case-insensitive). A non-empty
// provider must be the model's, when the model names one.
func (l *List) Lookup(model, provider string) (*Model, bool) {
	m, ok := l.byName[nameKey(model)]
	if !ok {
		return nil, false
	}
	if provider != "" && m.Provider != "" && !strings.EqualFold(provider, m.Provider) {
		return nil, false
	}
	return m, true
}
