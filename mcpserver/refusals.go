package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds on recent_refusals. The log holds every customer's events in
// shared commits, so finding refusals means reading commits back from the
// end of the stream; these bound that scan, as the HTTP gateway's events
// endpoint does.
const (
	// RefusalsLimitDefault and RefusalsLimitMax bound the refusals
	// returned (the limit argument).
	RefusalsLimitDefault = 20
	RefusalsLimitMax     = 100
	// RefusalScanCommitsMax bounds the commits read back for one call.
	RefusalScanCommitsMax = 1000
	// RefusalScanBytesMax bounds the bytes of the commits read for one
	// call (a commit is at most 768 KiB).
	RefusalScanBytesMax = 32 * 1024 * 1024
	// RefusalScansMax bounds the scans in progress at once; past it the
	// answer is unavailable (retry).
	RefusalScansMax = 4
	// StreamInfoTimeout bounds the first read of the stream. It answers in
	// milliseconds when allowed; a NATS user that may not read the stream
	// gets no answer at all (the server reports the violation
	// asynchronously), so without this bound the call would hang for the
	// whole ToolTimeout.
	StreamInfoTimeout = 2 * time.Second
)

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

type refusalsArgs struct {
	CustomerID string `json:"customer_id,omitempty"`
	Limit      *int   `json:"limit,omitempty"`
}

// recentRefusals authorizes, then scans. One customer's refusals need
// read access to that customer (its agents' keys, auditors, admins: its
// agents saw these refusals in their replies anyway); every customer's
// need an unbound key that may read the log (auditor or admin).
func (s *Server) recentRefusals(ctx context.Context, k *keys.Key, args json.RawMessage) (any, string, error) {
	var a refusalsArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, "", err
	}
	limit := RefusalsLimitDefault
	if a.Limit != nil {
		if *a.Limit < 1 || *a.Limit > RefusalsLimitMax {
			return nil, "", invalid("limit %d is not from 1 to %d", *a.Limit, RefusalsLimitMax)
		}
		limit = *a.Limit
	}
	cid := ""
	if a.CustomerID != "" || (k != nil && k.CustomerID != "") {
		var err error
		if cid, err = customerOf(a.CustomerID, k, keys.ActionRead); err != nil {
			return nil, "", err
		}
	} else if k != nil {
		if err := k.AuthorizeAction(keys.ActionAudit); err != nil {
			return nil, "", fmt.Errorf("%w (name a customer_id to read one customer's refusals)", err)
		}
	}
	select {
	case s.scans <- struct{}{}:
		defer func() { <-s.scans }()
	default:
		return nil, "", ledger.Errorf(ledger.CodeUnavailable, "too many event log reads in progress; retry")
	}
	r, err := s.scanRefusals(ctx, cid, limit)
	if err != nil {
		return nil, "", err
	}
	return r, refusalsSummary(r), nil
}

// scanRefusals reads commits back from the end of the log, within the
// bounds above, collecting the newest denied events (of cid, or all).
func (s *Server) scanRefusals(ctx context.Context, cid string, limit int) (*RefusalsReply, error) {
	r := &RefusalsReply{CustomerID: cid, Refusals: []Refusal{}}
	ictx, cancel := context.WithTimeout(ctx, StreamInfoTimeout)
	st, err := s.js.Stream(ictx, events.StreamName)
	cancel()
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return r, nil // nothing was ever committed
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return nil, ledger.Errorf(ledger.CodeUnavailable,
			"no answer reading the log stream %s within %s: AgentBill may be down, or this NATS user may not read the stream (nats.conf: admin may, agent may not)",
			events.StreamName, StreamInfoTimeout)
	}
	if err != nil {
		return nil, err
	}
	state := st.CachedInfo().State
	r.LastSeq = state.LastSeq
	seq, bytes := state.LastSeq, 0
	for ; seq >= max(state.FirstSeq, 1) && len(r.Refusals) < limit; seq-- {
		if r.ScannedCommits == RefusalScanCommitsMax || bytes >= RefusalScanBytesMax {
			r.Truncated = true
			break
		}
		msg, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		r.ScannedCommits++
		bytes += len(msg.Data)
		if !strings.HasPrefix(msg.Subject, events.LogSubjectPrefix) {
			continue
		}
		if err := r.addRefusals(msg.Data, seq, cid, limit); err != nil {
			return nil, fmt.Errorf("commit at sequence %d: %w", seq, err)
		}
	}
	return r, nil
}

// addRefusals appends one commit's denied events, newest first, up to
// limit in all.
func (r *RefusalsReply) addRefusals(data []byte, seq uint64, cid string, limit int) error {
	c, err := events.DecodeCommit(data)
	if err != nil {
		return err
	}
	for i := len(c.Events) - 1; i >= 0 && len(r.Refusals) < limit; i-- {
		e := c.Events[i]
		d, ok := e.Data.(*events.Denied)
		if !ok || (cid != "" && e.CustomerID != cid) {
			continue
		}
		r.Refusals = append(r.Refusals, Refusal{
			EventID: e.ID, Seq: seq, At: e.At, CustomerID: e.CustomerID, AgentID: d.AgentID,
			Reason: d.Reason, Message: d.Message, RequestedUnits: d.Requested,
			RemainingUnits: d.Balance.Remaining, TaskRef: d.TaskRef, UpgradeURL: d.UpgradeURL,
		})
	}
	return nil
}

func refusalsSummary(r *RefusalsReply) string {
	var b strings.Builder
	who := "all customers"
	if r.CustomerID != "" {
		who = "customer " + r.CustomerID
	}
	fmt.Fprintf(&b, "%d recent refusals for %s (newest first, %d commits scanned", len(r.Refusals), who, r.ScannedCommits)
	if r.Truncated {
		b.WriteString(", scan bounded: older ones may exist")
	}
	b.WriteString(")")
	for _, f := range r.Refusals {
		fmt.Fprintf(&b, "\n- %s customer %s agent %s asked %s units: %s: %s (%s remained)",
			f.At.UTC().Format(time.RFC3339), f.CustomerID, f.AgentID, f.RequestedUnits, f.Reason, f.Message, f.RemainingUnits)
	}
	return b.String()
}
