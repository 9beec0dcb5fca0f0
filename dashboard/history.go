package dashboard

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/httpapi"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// Bounds on a customer page.
const (
	// HistoryRowsMax bounds the events returned: the newest of the
	// period. The page's chart and table use them all.
	HistoryRowsMax = 1000
	// HistoryTimeout bounds the log read of one page. The read starts at
	// the period's first commit (found by time) and streams; on a busy
	// log a long period can take longer, and the reply then says it was
	// cut short.
	HistoryTimeout = 10 * time.Second
	// HistoryReadsMax bounds log reads at once; past it the answer is
	// unavailable (retry).
	HistoryReadsMax = 2
)

// EventRow is one event as the page shows it, in the history and in the
// live feed: audit.Row with every amount as an exact decimal string, and
// the limit including top-ups (as in the table).
type EventRow struct {
	Seq         uint64    `json:"seq,omitempty"` // the commit; 0 in the live feed
	At          time.Time `json:"at"`
	EventID     string    `json:"event_id"`
	Type        string    `json:"type"`
	CustomerID  string    `json:"customer_id"`
	Agent       string    `json:"agent,omitempty"`
	Reservation string    `json:"reservation,omitempty"`
	Units       string    `json:"units,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Limit       string    `json:"limit"` // including top-ups
	Used        string    `json:"used"`
	Reserved    string    `json:"reserved"`
	Remaining   string    `json:"remaining"`
}

// eventRowOf describes one event (audit.RowOf, with strings). Remaining
// is signed, as replies show it: the balance's remaining (never below 0)
// less what is overdrawn.
func eventRowOf(seq uint64, e *events.Envelope) EventRow {
	r := audit.RowOf(seq, e)
	b := events.BalanceOf(e.Data)
	row := EventRow{
		Seq: r.Seq, At: r.At, EventID: r.EventID, Type: string(r.Type), CustomerID: e.CustomerID,
		Agent: r.Agent, Reservation: r.Reservation, Units: r.Units, Reason: r.Reason,
		Limit: b.Limit.String(), Used: r.Used.String(), Reserved: r.Reserved.String(),
		Remaining: b.Remaining.Sub(b.Overdrawn).String(),
	}
	return row
}

// CustomerPage is the reply of GET /ui/api/customers/{id}.
type CustomerPage struct {
	Customer    CustomerRow         `json:"customer"`
	PeriodStart time.Time           `json:"period_start"`
	Now         time.Time           `json:"now"`
	Thresholds  []string            `json:"thresholds"`
	UpgradeURL  string              `json:"upgrade_url,omitempty"`
	Seq         uint64              `json:"seq"`
	History     []EventRow          `json:"history"` // this period's, oldest first
	Truncated   bool                `json:"truncated"`
	Agents      map[string]AgentRow `json:"agents"`
	// Grants are the open credit grants in draw-down order (at most
	// ledger.GrantsPerCustomerMax), GrantsRemaining what those usable now
	// have left.
	Grants          []GrantRow `json:"grants"`
	GrantsRemaining string     `json:"grants_remaining"`
	// Scopes are the limited scope values by dimension and value (at most
	// ledger.ScopeLimitsMax).
	Scopes []ScopeRow `json:"scopes"`
	// The budget's other rules, each left out when not set: how far
	// approvals may go below zero, what of an unused allowance rolls over
	// ("all" or a cap), the caps on open reservations, and the budget's
	// own preflight rate limit.
	Overdraft       string            `json:"overdraft,omitempty"`
	Rollover        string            `json:"rollover,omitempty"`
	MaxRuns         int               `json:"max_concurrent_runs,omitempty"`
	MaxRunsPerAgent int               `json:"max_concurrent_runs_per_agent,omitempty"`
	RateLimit       *events.RateLimit `json:"rate_limit,omitempty"`
	// PriceList is the list the customer's usage is priced with when the
	// budget names one; UnpricedRecords counts its records whose usage
	// could not be priced (charged their hold or units). A priced
	// record's history row says how it was priced (its reason).
	PriceList       string `json:"price_list,omitempty"`
	UnpricedRecords uint64 `json:"unpriced_records"`
}

// AgentRow is one agent's use within the customer's period.
type AgentRow struct {
	Used     string `json:"used"`
	Reserved string `json:"reserved"`
	Limit    string `json:"limit,omitempty"`
}

// GrantRow is one open credit grant (ledger.GrantStatus, amounts as
// exact decimal strings). ExpiresAt is nil for a grant that never expires.
type GrantRow struct {
	ID          string     `json:"id"`
	Units       string     `json:"units"`
	Remaining   string     `json:"remaining"`
	Priority    int        `json:"priority"`
	Source      string     `json:"source"`
	EffectiveAt time.Time  `json:"effective_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// ScopeRow is one limited scope value's position (ledger.ScopeStatus).
// Remaining is negative when its usage went past the limit.
type ScopeRow struct {
	Dimension string `json:"dimension"`
	Value     string `json:"value"`
	Limit     string `json:"limit"`
	Period    string `json:"period"`
	Used      string `json:"used"`
	Reserved  string `json:"reserved"`
	Remaining string `json:"remaining"`
	Level     string `json:"level"`
}

// GET /ui/api/customers/{id}
func (d *Dashboard) customer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := events.ValidateCustomerID(id); err != nil {
		httpapi.WriteError(w, ledger.Errorf(ledger.CodeInvalidArgument, "%v", err))
		return
	}
	page, err := d.status(id)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if !acquire(w, d.history, "history reads") {
		return
	}
	defer func() { <-d.history }()
	ctx, cancel := context.WithTimeout(r.Context(), HistoryTimeout)
	defer cancel()
	if err := d.readHistory(ctx, id, page); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, page)
}

// status is the customer's position from the follower.
func (d *Dashboard) status(id string) (*CustomerPage, error) {
	if !d.cfg.Ledger.Ready() {
		return nil, ledger.Errorf(ledger.CodeUnavailable, "the dashboard is still reading the log; retry")
	}
	now := d.cfg.Now()
	var (
		st  *ledger.StatusReply
		seq uint64
		err error
	)
	d.cfg.Ledger.Read(func(s *ledger.State, at uint64) {
		seq = at
		if s.Customer(id) == nil {
			err = ledger.Errorf(ledger.CodeNotFound, "customer %q has no budget in the ledger", truncate(id, 64))
			return
		}
		st, err = s.Status(id, now)
	})
	if err != nil {
		return nil, err
	}
	page := &CustomerPage{Customer: rowOf(st), PeriodStart: st.PeriodStart, Now: now, Seq: seq,
		UpgradeURL: st.UpgradeURL, History: []EventRow{}, Thresholds: []string{}, Agents: map[string]AgentRow{}}
	for _, t := range st.Thresholds {
		page.Thresholds = append(page.Thresholds, t.String())
	}
	for a, as := range st.Agents {
		v := AgentRow{Used: as.Used.String(), Reserved: as.Reserved.String()}
		if as.Limit != nil {
			v.Limit = as.Limit.String()
		}
		page.Agents[a] = v
	}
	addRules(page, st)
	return page, nil
}

// addRules fills in the page's grants, scopes and the budget's other
// rules from the customer's status.
func addRules(page *CustomerPage, st *ledger.StatusReply) {
	page.Grants = make([]GrantRow, 0, len(st.Grants))
	for _, g := range st.Grants {
		page.Grants = append(page.Grants, GrantRow{ID: g.GrantID, Units: g.Units.String(), Remaining: g.Remaining.String(),
			Priority: g.Priority, Source: g.Source, EffectiveAt: g.EffectiveAt, ExpiresAt: g.ExpiresAt})
	}
	page.GrantsRemaining = st.GrantsRemaining.String()
	page.Scopes = make([]ScopeRow, 0, len(st.Scopes))
	for _, sc := range st.Scopes {
		committed := sc.Used.Add(sc.Reserved)
		page.Scopes = append(page.Scopes, ScopeRow{Dimension: sc.Dimension, Value: sc.Value, Limit: sc.Limit.String(),
			Period: string(sc.Period), Used: sc.Used.String(), Reserved: sc.Reserved.String(),
			Remaining: sc.Remaining.String(), Level: levelOf(committed, sc.Limit, sc.Remaining.Sign() <= 0)})
	}
	if st.Overdraft != nil {
		page.Overdraft = st.Overdraft.String()
	}
	page.Rollover, page.MaxRuns, page.MaxRunsPerAgent = st.Rollover, st.MaxRuns, st.MaxRunsPerAgent
	page.PriceList, page.UnpricedRecords = st.PriceList, st.UnpricedRecords
	page.RateLimit = st.RateLimit
}

// readHistory fills page.History with the period's events up to the
// sequence of page's status (so the chart and the numbers above it agree),
// keeping the newest HistoryRowsMax. It reads like audit.History, from the
// period's first commit, but keeps each event whole for eventRowOf.
func (d *Dashboard) readHistory(ctx context.Context, id string, page *CustomerPage) error {
	if page.Seq == 0 {
		return nil // nothing committed yet
	}
	stop := projections.ReplayStop{StartTime: page.PeriodStart, UntilSeq: page.Seq}
	ring := make([]EventRow, 0, HistoryRowsMax)
	next := 0 // where the next row goes once ring is full
	_, err := projections.Replay(ctx, d.cfg.JS, stop, func(seq uint64, e *events.Envelope) error {
		if e.CustomerID != id || e.At.Before(page.PeriodStart) {
			return nil
		}
		if len(ring) < HistoryRowsMax {
			ring = append(ring, eventRowOf(seq, e))
			return nil
		}
		page.Truncated = true
		ring[next] = eventRowOf(seq, e)
		next = (next + 1) % HistoryRowsMax
		return nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		page.Truncated, err = true, nil // the newest events may be missing
	}
	if err != nil {
		return err
	}
	page.History = append(append(page.History, ring[next:]...), ring[:next]...)
	return nil
}
