package client

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentbill/agentbill/ledger"
)

// FailPolicy says what Preflight does when AgentBill cannot be reached
// after the client's retries: Deny (the default) or Allow.
type FailPolicy string

// Fail policies. Deny returns the unavailable error, so the run does not
// start: right when you sell budgets and must never overspend. Allow
// returns an unchecked approval (Approved and Unchecked, no reservation),
// so the run goes on: right when your product's availability matters more
// than a possible overspend during an outage, reconciled afterwards from
// SkippedChecks and the warnings. Only unavailable errors are affected:
// a refusal is always a refusal, and any other error is returned as is.
const (
	Deny  FailPolicy = "deny"
	Allow FailPolicy = "allow"
)

// SkippedWarnInterval bounds the "budget check skipped" warning to one
// line per interval, so an outage under load does not flood the log;
// SkippedChecks counts every skip.
const SkippedWarnInterval = time.Minute

// UncheckedMessage is the Message of an unchecked approval.
const UncheckedMessage = "budget check skipped: AgentBill was unavailable (fail policy allow)"

// WithOnUnavailable sets the fail policy. It panics on a value other than
// Deny or Allow: a misconfigured policy must not pass silently.
func WithOnUnavailable(p FailPolicy) Option {
	if p != Deny && p != Allow {
		panic(fmt.Sprintf("agentbill: on_unavailable must be %q or %q, got %q", Deny, Allow, p))
	}
	return func(c *Client) { c.fail.policy = p }
}

// WithLogger sets the logger of the fail policy's warnings (slog.Default
// otherwise).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.fail.logger = l } }

// failState is a client's fail policy and what it has skipped.
type failState struct {
	policy  FailPolicy
	logger  *slog.Logger
	now     func() time.Time
	skipped atomic.Int64
	mu      sync.Mutex
	warned  time.Time // when the last warning was logged; zero: never
}

// SkippedChecks returns how many preflights this client approved unchecked
// under Allow.
func (c *Client) SkippedChecks() int64 { return c.fail.skipped.Load() }

// unavailablePreflight applies the fail policy to a preflight's error.
func (c *Client) unavailablePreflight(customerID string, err error) (*ledger.PreflightReply, error) {
	if c.fail.policy != Allow || ledger.ErrorCode(err) != ledger.CodeUnavailable {
		return nil, err
	}
	n := c.fail.skipped.Add(1)
	c.fail.warn(customerID, n, err)
	return &ledger.PreflightReply{Approved: true, Unchecked: true, Message: UncheckedMessage}, nil
}

// warn logs at most once per SkippedWarnInterval.
func (f *failState) warn(customerID string, skipped int64, err error) {
	now := f.now()
	f.mu.Lock()
	due := f.warned.IsZero() || now.Sub(f.warned) >= SkippedWarnInterval
	if due {
		f.warned = now
	}
	f.mu.Unlock()
	if due {
		f.logger.Warn("agentbill: budget check skipped, service unavailable (fail policy allow)",
			"customer_id", customerID, "skipped_checks", skipped, "err", err)
	}
}
