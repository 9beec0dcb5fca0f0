// Package audit reads the ledger's log for people: a customer's history
// with running balances, the hash chain and signature checks, the
// comparison of a replayed state with the live writer's, and the bounded
// scan of the newest events (Scanner) behind the gateway's events
// endpoint and the MCP server's recent_refusals. It streams the log;
// nothing here loads the whole stream into memory.
package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go/jetstream"
)

// Row is one event of a customer's history, with the balance after it.
// Remaining is as replies show it: negative by what is overdrawn, for a
// customer in its overdraft. Grants is what the credit grants usable then
// had left (included in Remaining).
type Row struct {
	Seq         uint64        `json:"seq"` // the commit holding the event
	At          time.Time     `json:"at"`
	EventID     string        `json:"event_id"`
	Type        events.Type   `json:"type"`
	Agent       string        `json:"agent,omitempty"`
	Reservation string        `json:"reservation,omitempty"`
	Units       string        `json:"units,omitempty"`
	Reason      string        `json:"reason,omitempty"`
	Limit       events.Units  `json:"limit"`
	Used        events.Units  `json:"used"`
	Reserved    events.Units  `json:"reserved"`
	Remaining   events.Signed `json:"remaining"`
	Grants      events.Units  `json:"grants,omitzero"`
	// Grant is the grant a granted or grant_expired row is about.
	Grant string `json:"grant,omitempty"`
	// FundedBy is what credit grants paid of a charge (recorded), and
	// CountedScopes the scope limits a hold or charge counted against.
	FundedBy      []events.GrantDraw `json:"funded_by,omitempty"`
	CountedScopes []events.ScopeRef  `json:"counted_scopes,omitempty"`
}

// Filter selects the rows of History.
type Filter struct {
	CustomerID string
	From, To   time.Time // zero: unbounded
	Progress   func(seq, last uint64)
}

// History calls fn with every event of f.CustomerID between f.From and
// f.To, in log order. It starts reading at the first commit stored at or
// after From, and streams: memory does not grow with the log.
func History(ctx context.Context, js jetstream.JetStream, f Filter, fn func(Row) error) error {
	stop := projections.ReplayStop{StartTime: f.From, UntilTime: f.To, Progress: f.Progress}
	_, err := projections.Replay(ctx, js, stop, func(seq uint64, e *events.Envelope) error {
		if e.CustomerID != f.CustomerID || (!f.From.IsZero() && e.At.Before(f.From)) {
			return nil
		}
		return fn(RowOf(seq, e))
	})
	return err
}

// RowOf describes one event as a history row.
func RowOf(seq uint64, e *events.Envelope) Row {
	b := events.BalanceOf(e.Data)
	r := Row{Seq: seq, At: e.At, EventID: e.ID, Type: e.Type, Limit: b.Limit, Used: b.Used, Reserved: b.Reserved,
		Remaining: events.SignedOf(b.Remaining.Sub(b.Overdrawn)), Grants: b.Grants}
	switch d := e.Data.(type) {
	case *events.BudgetSet:
		r.Units = d.Limit.String() + "/" + d.Period
		r.Reason = d.Source
	case *events.ToppedUp:
		r.Units, r.Reason = d.Units.String(), d.Note
	case *events.Reserved:
		r.Agent, r.Reservation, r.Units, r.CountedScopes = d.AgentID, d.ReservationID, d.Units.String(), d.CountedScopes
		r.Reason = reservedReason(d)
	case *events.Denied:
		r.Agent, r.Units, r.Reason = d.AgentID, d.Requested.String(), d.Reason+": "+d.Message
	case *events.Recorded:
		r.Agent, r.Reservation, r.Units = d.AgentID, d.ReservationID, d.Units.String()
		r.FundedBy, r.CountedScopes = d.FundedBy, d.CountedScopes
		r.Reason = recordedReason(d)
	case *events.Released:
		r.Agent, r.Reservation, r.Units, r.Reason = d.AgentID, d.ReservationID, d.Units.String(), d.Cause
	case *events.Expired:
		r.Agent, r.Reservation, r.Units = d.AgentID, d.ReservationID, d.Units.String()
	case *events.Extended:
		r.Agent, r.Reservation = d.AgentID, d.ReservationID
		r.Reason = "until " + d.ExpiresAt.Format(time.RFC3339)
	case *events.ThresholdCrossed:
		r.Units, r.Reason = d.Fraction.String(), "threshold"
	case *events.BudgetExhausted:
		r.Agent, r.Reason = d.AgentID, d.Trigger
	case *events.BudgetRestored:
		r.Reason = d.Trigger
	case *events.Granted:
		r.Grant, r.Units, r.Reason = d.GrantID, d.Units.String(), grantedReason(d)
	case *events.GrantExpired:
		r.Grant, r.Units = d.GrantID, d.Remaining.String()
		r.Reason = fmt.Sprintf("grant %s expired: %s of %s unused, forfeited", d.GrantID, d.Remaining, d.Units)
	case *events.OverdraftStarted:
		r.Agent, r.Units = d.AgentID, d.Overdraft.String()
		r.Reason = fmt.Sprintf("into the overdraft of %s: %s below zero", d.Overdraft, b.Overdrawn)
	case *events.PricesSet:
		r.Reason = fmt.Sprintf("price list %s set to version %s: %d models (sha256 %s)", d.PriceList, d.Version, d.Models, d.Digest)
	}
	return r
}

// recordedReason says how a charge was reached: the price list's
// breakdown of reported usage ("1,200 input x 3/M + 400 output x 15/M =
// 0.0096 (...)"), or why the usage could not be priced; and any overage.
func recordedReason(d *events.Recorded) string {
	var parts []string
	switch {
	case d.Pricing != nil:
		parts = append(parts, d.Pricing.Describe())
	case d.Unpriced != "":
		parts = append(parts, "unpriced: "+d.Unpriced+"; charged "+d.Units.String())
	}
	if !d.Overage.IsZero() {
		parts = append(parts, "overage "+d.Overage.String())
	}
	return strings.Join(parts, "; ")
}

// reservedReason says what was special about a hold: a partial approval,
// or one into the overdraft; "" for neither.
func reservedReason(d *events.Reserved) string {
	var parts []string
	if !d.Requested.IsZero() {
		parts = append(parts, fmt.Sprintf("partial: %s of %s requested", d.Units, d.Requested))
	}
	if d.InOverdraft {
		parts = append(parts, "in overdraft")
	}
	return strings.Join(parts, "; ")
}

// grantedReason names a grant and its terms.
func grantedReason(d *events.Granted) string {
	until := "never expires"
	if !d.ExpiresAt.IsZero() {
		until = "expires " + d.ExpiresAt.UTC().Format(time.RFC3339)
	}
	s := fmt.Sprintf("grant %s: %s, priority %d, from %s, %s", d.GrantID, d.Source, d.Priority,
		d.EffectiveAt.UTC().Format(time.RFC3339), until)
	if d.Note != "" {
		s += ": " + d.Note
	}
	return s
}

// Link is the first broken link VerifyChain found.
type Link struct {
	Seq    uint64 `json:"seq"`
	Writer string `json:"writer"`
	Got    string `json:"got"`  // the commit's Agentbill-Chain-Prev
	Want   string `json:"want"` // the chain hash of the writer's previous commit
}

func (l *Link) String() string {
	return fmt.Sprintf("broken link at sequence %d (writer %s): the commit says its predecessor's chain hash is %q, but the writer's previous commit hashes to %q",
		l.Seq, l.Writer, l.Got, l.Want)
}

// Fault is the first commit whose signature VerifyChain refused.
type Fault struct {
	Seq     uint64 `json:"seq"`
	Writer  string `json:"writer"`
	Problem string `json:"problem"`
}

func (f *Fault) String() string {
	return fmt.Sprintf("commit at sequence %d (writer %s) is not signed by the service: %s", f.Seq, f.Writer, f.Problem)
}

// Reset is a reset commit: a break of the history an operator accepted
// (serve --accept-reset), with its record (JSON).
type Reset struct {
	Seq    uint64 `json:"seq"`
	Writer string `json:"writer"`
	Record string `json:"record"`
}

// ChainReport is what VerifyChain found.
type ChainReport struct {
	Commits uint64            `json:"commits"`
	Writers map[string]int    `json:"writers"` // commits per writer
	Heads   map[string]string `json:"heads"`   // each writer's last chain hash
	// Keys are the ids of the public keys signatures were checked with
	// (none: signatures were not checked).
	Keys []string `json:"keys"`
	// Unsigned counts commits without a signature that a later signed
	// commit of their writer covers (a log written before commits were
	// signed, adopted); one that nothing covers is BadSignature.
	Unsigned     uint64   `json:"unsigned,omitempty"`
	Broken       *Link    `json:"broken,omitempty"`
	BadSignature *Fault   `json:"bad_signature,omitempty"`
	Resets       []Reset  `json:"resets,omitempty"`
	Unknown      []string `json:"unknown_writers,omitempty"` // see CheckWriters
}

// CheckWriters records in r.Unknown every writer not in expected: a forged
// commit under a new writer name starts a chain of its own.
func (r *ChainReport) CheckWriters(expected []string) {
	known := map[string]bool{}
	for _, w := range expected {
		known[w] = true
	}
	for w := range r.Writers {
		if !known[w] {
			r.Unknown = append(r.Unknown, w)
		}
	}
	sort.Strings(r.Unknown)
}
