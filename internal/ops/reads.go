package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/events"
)

// The operations that read the log rather than ask the writer. Their scans
// are bounded by audit.Scanner (audit.ScanCommitsMax and the rest).

// Bounds on what the reads return.
const (
	// EventsLimitDefault and EventsLimitMax bound the events of
	// GET /v1/customers/{id}/events (?limit=N).
	EventsLimitDefault = 100
	EventsLimitMax     = 1000
	// RefusalsLimitDefault and RefusalsLimitMax bound the refusals of
	// recent_refusals (the limit argument).
	RefusalsLimitDefault = 20
	RefusalsLimitMax     = 100
)

// EventsQuery is GET /v1/customers/{id}/events?limit=N.
type EventsQuery struct {
	CustomerID string
	Limit      string // as given; checked once the customer is allowed
}

// Customer implements Request.
func (q *EventsQuery) Customer() string { return q.CustomerID }

func eventsQuery(path func(string) string, q url.Values) (Request, error) {
	id, err := pathID(path)
	if err != nil {
		return nil, err
	}
	return &EventsQuery{CustomerID: id, Limit: q.Get("limit")}, nil
}

// EventsPage is the reply of GET /v1/customers/{id}/events: the newest
// events of one customer found in the scanned commits, oldest first, each
// exactly as in the log (docs/PROTOCOL.md's envelope).
type EventsPage struct {
	CustomerID string            `json:"customer_id"`
	Events     []json.RawMessage `json:"events"`
	// ScannedCommits is how many commits were read, ending at LastSeq,
	// the stream's last sequence when the scan began.
	ScannedCommits int    `json:"scanned_commits"`
	LastSeq        uint64 `json:"last_seq"`
	// Truncated is true when the scan stopped at a bound before both the
	// start of the log and the limit: older events may exist (read them
	// from the stream itself, agentbill.log.>).
	Truncated bool `json:"truncated"`
}

func customerEvents(ctx context.Context, b Backend, cid string, req Request) (any, error) {
	q := req.(*EventsQuery)
	limit := EventsLimitDefault
	if q.Limit != "" {
		n, err := strconv.Atoi(q.Limit)
		if err != nil || n < 1 || n > EventsLimitMax {
			return nil, invalid("limit %q is not a number from 1 to %d", truncate(q.Limit, 16), EventsLimitMax)
		}
		limit = n
	}
	scan, err := b.Scans.Newest(ctx, limit, func(e *events.Envelope) bool { return e.CustomerID == cid })
	if err != nil {
		return nil, err
	}
	page := &EventsPage{CustomerID: cid, Events: make([]json.RawMessage, 0, len(scan.Matches)),
		ScannedCommits: scan.ScannedCommits, LastSeq: scan.LastSeq, Truncated: scan.Truncated}
	for i := len(scan.Matches) - 1; i >= 0; i-- { // oldest first
		m := scan.Matches[i]
		enc, err := events.Encode(m.Event)
		if err != nil {
			return nil, fmt.Errorf("commit at sequence %d: %w", m.Seq, err)
		}
		page.Events = append(page.Events, enc)
	}
	return page, nil
}

// RefusalsArgs are recent_refusals' arguments.
type RefusalsArgs struct {
	CustomerID string `json:"customer_id,omitempty"`
	Limit      *int   `json:"limit,omitempty"`
}

// Customer implements Request.
func (a *RefusalsArgs) Customer() string { return a.CustomerID }

// check is run before the customer is resolved (checker).
func (a *RefusalsArgs) check() error {
	if a.Limit != nil && (*a.Limit < 1 || *a.Limit > RefusalsLimitMax) {
		return invalid("limit %d is not from 1 to %d", *a.Limit, RefusalsLimitMax)
	}
	return nil
}

// Refusal is one denied event, flattened.
type Refusal struct {
	EventID        string       `json:"event_id"`
	Seq            uint64       `json:"seq"` // the commit's stream sequence
	At             time.Time    `json:"at"`
	CustomerID     string       `json:"customer_id"`
	AgentID        string       `json:"agent_id"`
	Reason         string       `json:"reason"`
	Message        string       `json:"message"`
	RequestedUnits events.Units `json:"requested_units"`
	RemainingUnits events.Units `json:"remaining_units"`
	TaskRef        string       `json:"task_ref,omitempty"`
	UpgradeURL     string       `json:"upgrade_url,omitempty"`
}

// RefusalsReply is the result of recent_refusals.
type RefusalsReply struct {
	CustomerID string    `json:"customer_id,omitempty"` // "" : every customer
	Refusals   []Refusal `json:"refusals"`              // newest first
	// ScannedCommits is how many commits were read, ending at LastSeq, the
	// stream's last sequence when the scan began.
	ScannedCommits int    `json:"scanned_commits"`
	LastSeq        uint64 `json:"last_seq"`
	// Truncated is true when the scan stopped at a bound before both the
	// start of the log and the limit: older refusals may exist.
	Truncated bool `json:"truncated"`
}

// recentRefusals collects the newest denied events (of cid, or of every
// customer when cid is "") from the log.
func recentRefusals(ctx context.Context, b Backend, cid string, req Request) (any, error) {
	limit := RefusalsLimitDefault
	if a := req.(*RefusalsArgs); a.Limit != nil {
		limit = *a.Limit
	}
	scan, err := b.Scans.Newest(ctx, limit, func(e *events.Envelope) bool {
		_, denied := e.Data.(*events.Denied)
		return denied && (cid == "" || e.CustomerID == cid)
	})
	if err != nil {
		return nil, err
	}
	r := &RefusalsReply{CustomerID: cid, Refusals: make([]Refusal, 0, len(scan.Matches)),
		ScannedCommits: scan.ScannedCommits, LastSeq: scan.LastSeq, Truncated: scan.Truncated}
	for _, m := range scan.Matches {
		e, d := m.Event, m.Event.Data.(*events.Denied) // the filter kept only these
		r.Refusals = append(r.Refusals, Refusal{
			EventID: e.ID, Seq: m.Seq, At: e.At, CustomerID: e.CustomerID, AgentID: d.AgentID,
			Reason: d.Reason, Message: d.Message, RequestedUnits: d.Requested,
			RemainingUnits: d.Balance.Remaining, TaskRef: d.TaskRef, UpgradeURL: d.UpgradeURL,
		})
	}
	return r, nil
}
