package prices

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/agentbill/agentbill/events"
)

// Usage is what one model call used (events.Usage: the record request
// and the event carry it).
type Usage = events.Usage

// ErrUsage is wrapped by every error of usage that contradicts itself or
// breaks a bound.
var ErrUsage = events.ErrUsage

// Charge is a priced call: the total and how it was reached.
type Charge = events.Pricing

// Line is one kind's part of a charge.
type Line = events.PriceLine

// Estimate is what a preflight expects one model call to use: the prompt
// it will send and the most output it allows.
type Estimate struct {
	Model           string `json:"model"`
	Provider        string `json:"provider,omitempty"`
	InputTokens     *int64 `json:"input_tokens"`
	MaxOutputTokens *int64 `json:"max_output_tokens"`
	ServiceTier     string `json:"service_tier,omitempty"`
}

// Unpriced says why usage could not be priced: the list has no such model,
// no rates for the service tier, or the usage lacks a count pricing needs.
type Unpriced struct{ Reason string }

func (e *Unpriced) Error() string { return "cannot price usage: " + e.Reason }

// Validate checks an estimate: a model, and both counts present and in
// bounds.
func (e *Estimate) Validate() error {
	u := e.usage()
	err := u.Validate()
	if e.InputTokens == nil || e.MaxOutputTokens == nil {
		err = errors.Join(err, fmt.Errorf("%w: input_tokens and max_output_tokens are both required", ErrUsage))
	}
	return err
}

// usage is the worst case of an estimate: every prompt token at the input
// rate (no cache discount), and the whole output allowance.
func (e *Estimate) usage() Usage {
	return Usage{Model: e.Model, Provider: e.Provider, InputTokens: e.InputTokens,
		OutputTokens: e.MaxOutputTokens, ServiceTier: e.ServiceTier}
}

// Price prices usage exactly. It returns *Unpriced when the list cannot
// price it; u must have passed Validate.
func (l *List) Price(u Usage) (Charge, error) {
	m, ok := l.Lookup(u.Model, u.Provider)
	if !ok {
		if u.Provider != "" {
			return Charge{}, &Unpriced{fmt.Sprintf("price list %q (version %s) has no model %q of provider %q", l.Name, l.Version, u.Model, u.Provider)}
		}
		return Charge{}, &Unpriced{fmt.Sprintf("price list %q (version %s) has no model %q", l.Name, l.Version, u.Model)}
	}
	rates, tiers, fee := m.Rates, m.Tiers, m.RequestFee
	st := ""
	if !isBaseServiceTier(u.ServiceTier) {
		t, ok := serviceTier(m, u.ServiceTier)
		if !ok {
			return Charge{}, &Unpriced{fmt.Sprintf("model %q in price list %q (version %s) has no rates for service tier %q", m.ID, l.Name, l.Version, u.ServiceTier)}
		}
		rates, tiers, fee, st = t.Rates, t.Tiers, t.RequestFee, strings.ToLower(u.ServiceTier)
	}
	switch {
	case u.InputTokens == nil:
		return Charge{}, &Unpriced{fmt.Sprintf("usage for model %q does not report input_tokens", u.Model)}
	case u.OutputTokens == nil:
		return Charge{}, &Unpriced{fmt.Sprintf("usage for model %q does not report output_tokens", u.Model)}
	}
	in := *u.InputTokens
	ch := Charge{List: l.Name, Version: l.Version, Model: m.ID, Provider: m.Provider, ServiceTier: st, RequestFee: fee}
	// The rates in force, by kind (kindIndex), in an array: a decision
	// prices without building maps.
	var effective rateSet
	for k, r := range rates {
		effective.set(k, r)
	}
	for _, t := range tiers {
		if in > t.AboveInputTokens {
			ch.AboveInputTokens = t.AboveInputTokens
			for k, r := range t.Rates {
				effective.set(k, r)
			}
		}
	}
	ch.Lines = lines(&effective, u)
	total := events.Zero
	for _, ln := range ch.Lines {
		total = total.Add(events.NewUnits(ln.Tokens, 0).Mul(ln.Rate.Shift(-6)))
	}
	if fee != nil {
		total = total.Add(*fee)
	}
	ch.Total = total
	return ch, nil
}

// serviceTier finds a model's service tier by name, case-insensitive.
func serviceTier(m *Model, name string) (ServiceTier, bool) {
	for n, t := range m.ServiceTiers {
		if strings.EqualFold(n, name) {
			return t, true
		}
	}
	return ServiceTier{}, false
}

// rateSet is the rates in force for one call, by kind index.
type rateSet struct {
	rate  [kindsN]events.Units
	rated [kindsN]bool
}

func (r *rateSet) set(k Kind, v events.Units) {
	if i := kindIndex(k); i >= 0 {
		r.rate[i], r.rated[i] = v, true
	}
}

// kindsN is the number of kinds (len(Kinds)).
const kindsN = 7

// kindParent is parentOf by index: -1 for a kind with no parent.
var kindParent = func() [kindsN]int {
	var p [kindsN]int
	for i, k := range Kinds {
		p[i] = kindIndex(parentOf[k])
	}
	return p
}()

func kindIndex(k Kind) int {
	for i, x := range Kinds {
		if x == k {
			return i
		}
	}
	return -1
}

// lines splits the usage over the rated kinds: each rated kind is charged
// its own tokens less those of its rated descendants, which they pay at
// their own rates (genai-prices' leaf rule). Lines with no tokens are left
// out. Kinds lists parents before children, so walking it backwards
// settles every child before its parent.
func lines(rates *rateSet, u Usage) []Line {
	cw, cw1h := events.Count(u.CacheWriteTokens), events.Count(u.CacheWrite1hTokens)
	count := [kindsN]int64{
		events.Count(u.InputTokens), events.Count(u.CacheReadTokens), cw, cw - cw1h, cw1h,
		events.Count(u.OutputTokens), events.Count(u.ReasoningTokens),
	}
	// taken[i]: the tokens of kind i's rated descendants, charged at their rates.
	var leaf, taken [kindsN]int64
	for i := kindsN - 1; i >= 0; i-- {
		if rates.rated[i] {
			leaf[i] = count[i] - taken[i]
		}
		for p := kindParent[i]; p >= 0; p = kindParent[p] {
			if rates.rated[i] {
				taken[p] += leaf[i]
			}
		}
	}
	out := make([]Line, 0, kindsN)
	for i, k := range Kinds {
		if rates.rated[i] && leaf[i] > 0 {
			out = append(out, Line{Kind: k, Tokens: leaf[i], Rate: rates.rate[i]})
		}
	}
	return out
}

// PriceEstimate prices an estimate's worst case.
func (l *List) PriceEstimate(e Estimate) (Charge, error) { return l.Price(e.usage()) }

// OutputTokensFitting returns the most output tokens, at most the
// estimate's max_output_tokens, whose worst-case charge fits in held.
func (l *List) OutputTokensFitting(e Estimate, held events.Units) (int64, error) {
	zero := int64(0)
	noOutput := e
	noOutput.MaxOutputTokens = &zero
	base, err := l.PriceEstimate(noOutput)
	if err != nil {
		return 0, err
	}
	full, err := l.PriceEstimate(e)
	if err != nil {
		return 0, err
	}
	if full.Total.Cmp(held) <= 0 {
		return *e.MaxOutputTokens, nil
	}
	if base.Total.Cmp(held) > 0 {
		return 0, nil
	}
	rate := events.Zero
	for _, ln := range full.Lines {
		if ln.Kind == Output {
			rate = ln.Rate.Shift(-6)
		}
	}
	n, ok := held.Sub(base.Total).FloorDiv(rate)
	if !ok || n > *e.MaxOutputTokens {
		return *e.MaxOutputTokens, nil
	}
	return n, nil
}

// Names returns the list's model ids, sorted.
func (l *List) Names() []string {
	ids := make([]string, len(l.Models))
	for i, m := range l.Models {
		ids[i] = m.ID
	}
	sort.Strings(ids)
	return ids
}
