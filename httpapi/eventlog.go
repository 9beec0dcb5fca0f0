package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/keys"
)

// Bounds on GET /v1/customers/{id}/events. The scan of the log behind it
// is bounded by audit.Scanner (audit.ScanCommitsMax and the rest).
const (
	// EventsLimitDefault and EventsLimitMax bound the events returned
	// (?limit=N).
	EventsLimitDefault = 100
	EventsLimitMax     = 1000
)

// EventsPage is the reply of GET /v1/customers/{id}/events: the newest
// events of one customer found in the scanned commits, oldest first, each
// exactly as in the log (docs/PROTOCOL.md, "Events": the envelope).
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

// GET /v1/customers/{id}/events?limit=N
func (s *Server) customerEvents(ctx context.Context, r *http.Request, k *keys.Key) (any, error) {
	cid, err := pathCustomer(r, k, keys.ActionAudit)
	if err != nil {
		return nil, err
	}
	limit := EventsLimitDefault
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > EventsLimitMax {
			return nil, invalid("limit %q is not a number from 1 to %d", truncate(v, 16), EventsLimitMax)
		}
		limit = n
	}
	scan, err := s.scans.Newest(ctx, limit, func(e *events.Envelope) bool { return e.CustomerID == cid })
	if err != nil {
		return nil, err
	}
	page := &EventsPage{CustomerID: cid, Events: make([]json.RawMessage, 0, len(scan.Matches)),
		ScannedCommits: scan.ScannedCommits, LastSeq: scan.LastSeq, Truncated: scan.Truncated}
	for i := len(scan.Matches) - 1; i >= 0; i-- { // oldest first
		m := scan.Matches[i]
		b, err := events.Encode(m.Event)
		if err != nil {
			return nil, fmt.Errorf("commit at sequence %d: %w", m.Seq, err)
		}
		page.Events = append(page.Events, b)
	}
	return page, nil
}
