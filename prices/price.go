package prices

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/agentbill/agentbill/events"
)

// Usage is what one model call used, as a provider reports it
// (docs/PROTOCOL.md, "Priced usage"). A nil count was not reported.
type Usage struct {
	Model              string `json:"model"`
	Provider           string `json:"provider,omitempty"`
	InputTokens        *int64 `json:"input_tokens,omitempty"`
	OutputTokens       *int64 `json:"output_tokens,omitempty"`
	CacheReadTokens    *int64 `json:"cache_read_tokens,omitempty"`
	CacheWriteTokens   *int64 `json:"cache_write_tokens,omitempty"`
	CacheWrite1hTokens *int64 `json:"cache_write_1h_tokens,omitempty"`
	ReasoningTokens    *int64 `json:"reasoning_tokens,omitempty"`
	ServiceTier        string `json:"service_tier,omitempty"`
}

// Estimate is what a preflight expects one model call to use: the prompt
// it will send and the most output it allows.
type Estimate struct {
	Model           string `json:"model"`
	Provider        string `json:"provider,omitempty"`
	InputTokens     *int64 `json:"input_tokens"`
	MaxOutputTokens *int64 `json:"max_output_tokens"`
	ServiceTier     string `json:"service_tier,omitempty"`
}

// ErrUsage is wrapped by every error of usage that contradicts itself or
// breaks a bound: a request error (invalid_argument), not a pricing gap.
var ErrUsage = errors.New("invalid usage")

// Unpriced says why usage could not be priced: the list has no such model,
// no rates for the service tier, or the usage lacks a count pricing needs.
type Unpriced struct{ Reason string }

func (e *Unpriced) Error() string { return "cannot price usage: " + e.Reason }

// Line is one kind's part of a charge: Tokens at Rate per million.
type Line struct {
	Kind   Kind         `json:"kind"`
	Tokens int64        `json:"tokens"`
	Rate   events.Units `json:"rate"`
}

// Charge is a priced call: the total and how it was reached.
type Charge struct {
	List        string `json:"list"`
	Version     string `json:"version"`
	Model       string `json:"model"`
	Provider    string `json:"provider,omitempty"`
	ServiceTier string `json:"service_tier,omitempty"`
	// AboveInputTokens is the long-context tier the prompt crossed, if any.
	AboveInputTokens int64         `json:"above_input_tokens,omitempty"`
	Lines            []Line        `json:"lines"`
	RequestFee       *events.Units `json:"request_fee,omitempty"`
	Total            events.Units  `json:"total"`
}

// Validate checks the counts are in bounds and agree with each other
// (cache tokens within input, the 1-hour writes within all writes,
// reasoning within output). Missing counts are not errors here.
func (u *Usage) Validate() error {
	var errs []error
	if strings.TrimSpace(u.Model) == "" {
		errs = append(errs, errors.New("model: empty"))
	} else if len(u.Model) > NameLenMax {
		errs = append(errs, fmt.Errorf("model: %d bytes, at most %d", len(u.Model), NameLenMax))
	}
	if len(u.Provider) > NameLenMax || len(u.ServiceTier) > NameLenMax {
		errs = append(errs, fmt.Errorf("provider, service_tier: at most %d bytes", NameLenMax))
	}
	for _, c := range u.counts() {
		if c.n != nil && (*c.n < 0 || *c.n > TokensMax) {
			errs = append(errs, fmt.Errorf("%s: %d, want 0 to %d", c.name, *c.n, TokensMax))
		}
	}
	if len(errs) == 0 {
		in, cr, cw, cw1h := val(u.InputTokens), val(u.CacheReadTokens), val(u.CacheWriteTokens), val(u.CacheWrite1hTokens)
		if u.InputTokens != nil && cr+cw > in {
			errs = append(errs, fmt.Errorf("cache_read_tokens + cache_write_tokens (%d) exceed input_tokens (%d), which counts every prompt token", cr+cw, in))
		}
		if u.CacheWrite1hTokens != nil && cw1h > cw {
			errs = append(errs, fmt.Errorf("cache_write_1h_tokens (%d) exceed cache_write_tokens (%d), which counts every cache write", cw1h, cw))
		}
		if u.OutputTokens != nil && val(u.ReasoningTokens) > val(u.OutputTokens) {
			errs = append(errs, fmt.Errorf("reasoning_tokens (%d) exceed output_tokens (%d), which counts every output token", val(u.ReasoningTokens), val(u.OutputTokens)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrUsage, errors.Join(errs...))
	}
	return nil
}

type namedCount struct {
	name string
	n    *int64
}

func (u *Usage) counts() []namedCount {
	return []namedCount{
		{"input_tokens", u.InputTokens}, {"output_tokens", u.OutputTokens},
		{"cache_read_tokens", u.CacheReadTokens}, {"cache_write_tokens", u.CacheWriteTokens},
		{"cache_write_1h_tokens", u.CacheWrite1hTokens}, {"reasoning_tokens", u.ReasoningTokens},
	}
}

func val(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

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
	for _, c := range []namedCount{{"input_tokens", u.InputTokens}, {"output_tokens", u.OutputTokens}} {
		if c.n == nil {
			return Charge{}, &Unpriced{fmt.Sprintf("usage for model %q does not report %s", u.Model, c.name)}
		}
	}
	in := *u.InputTokens
	ch := Charge{List: l.Name, Version: l.Version, Model: m.ID, Provider: m.Provider, ServiceTier: st, RequestFee: fee}
	effective := Rates{}
	for k, r := range rates {
		effective[k] = r
	}
	for _, t := range tiers {
		if in > t.AboveInputTokens {
			ch.AboveInputTokens = t.AboveInputTokens
			for k, r := range t.Rates {
				effective[k] = r
			}
		}
	}
	ch.Lines = lines(effective, u)
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

// lines splits the usage over the rated kinds: each rated kind is charged
// its own tokens less those of its rated descendants, which they pay at
// their own rates (genai-prices' leaf rule). Lines with no tokens are left
// out.
func lines(rates Rates, u Usage) []Line {
	cw, cw1h := val(u.CacheWriteTokens), val(u.CacheWrite1hTokens)
	count := map[Kind]int64{
		Input: val(u.InputTokens), CacheRead: val(u.CacheReadTokens),
		CacheWrite: cw, CacheWrite5m: cw - cw1h, CacheWrite1h: cw1h,
		Output: val(u.OutputTokens), Reasoning: val(u.ReasoningTokens),
	}
	// Children first (deepest kinds come later in Kinds), so each parent
	// subtracts what its rated descendants already took.
	leaf := map[Kind]int64{}
	for i := len(Kinds) - 1; i >= 0; i-- {
		k := Kinds[i]
		if _, rated := rates[k]; !rated {
			continue
		}
		n := count[k]
		for d := range parentOf {
			if _, rated := rates[d]; rated && descends(d, k) {
				n -= leaf[d]
			}
		}
		leaf[k] = n
	}
	var out []Line
	for _, k := range Kinds {
		if n, ok := leaf[k]; ok && n > 0 {
			out = append(out, Line{Kind: k, Tokens: n, Rate: rates[k]})
		}
	}
	return out
}

// descends reports whether d is a strict descendant of k.
func descends(d, k Kind) bool {
	for p, ok := parentOf[d]; ok; p, ok = parentOf[p] {
		if p == k {
			return true
		}
	}
	return false
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

// Describe writes a charge as audit shows it:
// "1,200 input x 3/M + 400 output x 15/M = 0.0096".
func (c Charge) Describe() string {
	var parts []string
	for _, ln := range c.Lines {
		parts = append(parts, fmt.Sprintf("%s %s x %s/M", thousands(ln.Tokens), strings.ReplaceAll(string(ln.Kind), "_", " "), ln.Rate))
	}
	if c.RequestFee != nil && !c.RequestFee.IsZero() {
		parts = append(parts, "request fee "+c.RequestFee.String())
	}
	if len(parts) == 0 {
		parts = append(parts, "0 tokens")
	}
	s := strings.Join(parts, " + ") + " = " + c.Total.String()
	var how []string
	if c.AboveInputTokens > 0 {
		how = append(how, "long-context rates above "+thousands(c.AboveInputTokens)+" input tokens")
	}
	if c.ServiceTier != "" {
		how = append(how, "service tier "+c.ServiceTier)
	}
	how = append(how, fmt.Sprintf("%s, list %s %s", c.Model, c.List, c.Version))
	return s + " (" + strings.Join(how, "; ") + ")"
}

// thousands formats n with comma separators: 1200 -> "1,200".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
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
