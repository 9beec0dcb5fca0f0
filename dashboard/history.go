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

// eventRowOf describes one event (audit.RowOf, with strings).
func eventRowOf(seq uint64, e *events.Envelope) EventRow {
	r := audit.RowOf(seq, e)
	b := events.BalanceOf(e.Data)
	return EventRow{
		Seq: r.Seq, At: r.At, EventID: r.EventID, Type: string(r.Type), CustomerID: e.CustomerID,
		Agent: r.Agent, Reservation: r.Reservation, Units: r.Units, Reason: r.Reason,
		Limit: b.Limit.Add(b.TopUps).String(), Used: r.Used.String(), Reserved: r.Reserved.String(),
		Remaining: r.Remaining.String(),
	}
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
}

// AgentRow is one agent's use within the customer's period.
type AgentRow struct {
	Used     string `json:"used"`
	Reserved string `json:"reserved"`
	Limit    string `json:"limit,omitempty"`
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
	return page, nil
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
