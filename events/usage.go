package events

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Bounds on reported usage (docs/PROTOCOL.md, "Priced usage").
const (
	// TokensMax bounds any token count of one request (10^12).
	TokensMax int64 = 1_000_000_000_000
	// UsageNameLenMax bounds a model, provider or service tier name, and
	// a price list's name and version, in bytes.
	UsageNameLenMax = 128
)

// ErrUsage is wrapped by every error of usage that contradicts itself or
// breaks a bound: a request error (invalid_argument), not a pricing gap.
var ErrUsage = errors.New("invalid usage")

// TokenKind is a kind of token a price list can rate.
type TokenKind string

// The token kinds, in the order a breakdown lists them.
const (
	KindInput        TokenKind = "input"
	KindCacheRead    TokenKind = "cache_read"
	KindCacheWrite   TokenKind = "cache_write"
	KindCacheWrite5m TokenKind = "cache_write_5m"
	KindCacheWrite1h TokenKind = "cache_write_1h"
	KindOutput       TokenKind = "output"
	KindReasoning    TokenKind = "reasoning"
)

// Usage is what one model call used, as a provider reports it. A nil
// count was not reported. InputTokens counts every prompt token, cache
// reads and writes included; CacheWriteTokens every cache write, the
// 1-hour ones included; OutputTokens every output token, reasoning
// included.
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

// Validate checks the counts are in bounds and agree with each other
// (cache tokens within input, the 1-hour writes within all writes,
// reasoning within output). Missing counts are not errors here: usage
// that lacks a count pricing needs is recorded unpriced.
func (u *Usage) Validate() error {
	var errs []error
	if strings.TrimSpace(u.Model) == "" {
		errs = append(errs, errors.New("model: empty"))
	}
	for _, f := range []struct{ name, v string }{{"model", u.Model}, {"provider", u.Provider}, {"service_tier", u.ServiceTier}} {
		if len(f.v) > UsageNameLenMax {
			errs = append(errs, fmt.Errorf("%s: %d bytes, at most %d", f.name, len(f.v), UsageNameLenMax))
		} else if strings.ContainsFunc(f.v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			errs = append(errs, fmt.Errorf("%s: control characters", f.name))
		}
	}
	for _, c := range u.counts() {
		if c.n != nil && (*c.n < 0 || *c.n > TokensMax) {
			errs = append(errs, fmt.Errorf("%s: %d, want 0 to %d", c.name, *c.n, TokensMax))
		}
	}
	if len(errs) == 0 {
		in, cr, cw, cw1h := Count(u.InputTokens), Count(u.CacheReadTokens), Count(u.CacheWriteTokens), Count(u.CacheWrite1hTokens)
		if u.InputTokens != nil && cr+cw > in {
			errs = append(errs, fmt.Errorf("cache_read_tokens + cache_write_tokens (%d) exceed input_tokens (%d), which counts every prompt token", cr+cw, in))
		}
		if u.CacheWrite1hTokens != nil && cw1h > cw {
			errs = append(errs, fmt.Errorf("cache_write_1h_tokens (%d) exceed cache_write_tokens (%d), which counts every cache write", cw1h, cw))
		}
		if u.OutputTokens != nil && Count(u.ReasoningTokens) > Count(u.OutputTokens) {
			errs = append(errs, fmt.Errorf("reasoning_tokens (%d) exceed output_tokens (%d), which counts every output token", Count(u.ReasoningTokens), Count(u.OutputTokens)))
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

// Count is a reported count, or 0 when it was not reported.
func Count(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// PriceLine is one kind's part of a charge: Tokens at Rate per million.
type PriceLine struct {
	Kind   TokenKind `json:"kind"`
	Tokens int64     `json:"tokens"`
	Rate   Units     `json:"rate"`
}

// Pricing is a priced model call: the total and how it was reached, with
// the list and version used, so an old charge explains itself after the
// list changed.
type Pricing struct {
	List        string `json:"list"`
	Version     string `json:"version"`
	Model       string `json:"model"`
	Provider    string `json:"provider,omitempty"`
	ServiceTier string `json:"service_tier,omitempty"`
	// AboveInputTokens is the long-context tier the prompt crossed, if any.
	AboveInputTokens int64       `json:"above_input_tokens,omitempty"`
	Lines            []PriceLine `json:"lines"`
	RequestFee       *Units      `json:"request_fee,omitempty"`
	Total            Units       `json:"total"`
}

// Describe writes a charge as audit shows it:
// "1,200 input x 3/M + 400 output x 15/M = 0.0096 (model, list default v1)".
func (c Pricing) Describe() string {
	var parts []string
	for _, ln := range c.Lines {
		parts = append(parts, fmt.Sprintf("%s %s x %s/M", Thousands(ln.Tokens), strings.ReplaceAll(string(ln.Kind), "_", " "), ln.Rate))
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
		how = append(how, "long-context rates above "+Thousands(c.AboveInputTokens)+" input tokens")
	}
	if c.ServiceTier != "" {
		how = append(how, "service tier "+c.ServiceTier)
	}
	how = append(how, fmt.Sprintf("%s, list %s %s", c.Model, c.List, c.Version))
	return s + " (" + strings.Join(how, "; ") + ")"
}

// Thousands formats n with comma separators: 1200 -> "1,200".
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
