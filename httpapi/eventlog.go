package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds on GET /v1/customers/{id}/events. The log holds every customer's
// events in shared commits, so finding one customer's means reading commits
// back from the end of the stream; these bound that scan.
const (
	// EventsLimitDefault and EventsLimitMax bound the events returned
	// (?limit=N).
	EventsLimitDefault = 100
	EventsLimitMax     = 1000
	// EventScanCommitsMax bounds the commits read back from the end of
	// the log for one request.
	EventScanCommitsMax = 1000
	// EventScanBytesMax bounds the bytes of the commits read for one
	// request (a commit is at most 768 KiB).
	EventScanBytesMax = 32 * 1024 * 1024
	// EventScansMax bounds the scans in progress at once; past it the
	// answer is unavailable (retry).
	EventScansMax = 4
)

// EventsPage is the reply of GET /v1/customers/{id}/events: the newest
// events of one customer found in the scanned commits, oldest first, each
// exactly as in the log (DESIGN.md's envelope).
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
	select {
	case s.scans <- struct{}{}:
		defer func() { <-s.scans }()
	default:
		return nil, ledger.Errorf(ledger.CodeUnavailable, "too many event log reads in progress; retry")
	}
	return s.scanEvents(ctx, cid, limit)
}

// scanEvents reads commits back from the end of the log, within the
// bounds above, collecting the customer's newest events.
func (s *Server) scanEvents(ctx context.Context, cid string, limit int) (*EventsPage, error) {
	page := &EventsPage{CustomerID: cid, Events: []json.RawMessage{}}
	st, err := s.js.Stream(ctx, events.StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return page, nil // nothing was ever committed
	}
	if err != nil {
		return nil, err
	}
	state := st.CachedInfo().State
	page.LastSeq = state.LastSeq
	var found []json.RawMessage // newest first
	seq, bytes := state.LastSeq, 0
	for ; seq >= max(state.FirstSeq, 1) && len(found) < limit; seq-- {
		if page.ScannedCommits == EventScanCommitsMax || bytes >= EventScanBytesMax {
			page.Truncated = true
			break
		}
		msg, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		page.ScannedCommits++
		bytes += len(msg.Data)
		if !strings.HasPrefix(msg.Subject, events.LogSubjectPrefix) {
			continue
		}
		found, err = customerEventsOf(msg.Data, cid, found, limit)
		if err != nil {
			return nil, fmt.Errorf("commit at sequence %d: %w", seq, err)
		}
	}
	slices.Reverse(found)
	page.Events = append(page.Events, found...)
	return page, nil
}

// customerEventsOf appends the customer's events of one commit, newest
// first, to found, up to limit in all.
func customerEventsOf(data []byte, cid string, found []json.RawMessage, limit int) ([]json.RawMessage, error) {
	c, err := events.DecodeCommit(data)
	if err != nil {
		return found, err
	}
	for i := len(c.Events) - 1; i >= 0 && len(found) < limit; i-- {
		e := c.Events[i]
		if e.CustomerID != cid {
			continue
		}
		b, err := events.Encode(e)
		if err != nil {
			return found, err
		}
		found = append(found, b)
	}
	return found, nil
}
