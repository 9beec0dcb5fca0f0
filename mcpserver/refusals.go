package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/keys"
)

// Bounds on recent_refusals. The scan of the log behind it is bounded by
// audit.Scanner (audit.ScanCommitsMax and the rest), as the HTTP
// gateway's events endpoint is.
const (
	// RefusalsLimitDefault and RefusalsLimitMax bound the refusals
	// returned (the limit argument).
	RefusalsLimitDefault = 20
	RefusalsLimitMax     = 100
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
	r, err := s.scanRefusals(ctx, cid, limit)
	if err != nil {
		return nil, "", err
	}
	return r, refusalsSummary(r), nil
}

// scanRefusals collects the newest denied events (of cid, or all) from
// the log, within audit.Scanner's bounds.
func (s *Server) scanRefusals(ctx context.Context, cid string, limit int) (*RefusalsReply, error) {
	scan, err := s.scans.Newest(ctx, limit, func(e *events.Envelope) bool {
		_, denied := e.Data.(*events.Denied)
		return denied && (cid == "" || e.CustomerID == cid)
	})
	if err != nil {
		return nil, err
	}
	r := &RefusalsReply{CustomerID: cid, Refusals: make([]Refusal, 0, len(scan.Matches)),
		ScannedCommits: scan.ScannedCommits, LastSeq: scan.LastSeq, Truncated: scan.Truncated}
	for _, m := range scan.Matches {
		e, d := m.Event, m.Event.Data.(*events.Denied) // keep took only these
		r.Refusals = append(r.Refusals, Refusal{
			EventID: e.ID, Seq: m.Seq, At: e.At, CustomerID: e.CustomerID, AgentID: d.AgentID,
			Reason: d.Reason, Message: d.Message, RequestedUnits: d.Requested,
			RemainingUnits: d.Balance.Remaining, TaskRef: d.TaskRef, UpgradeURL: d.UpgradeURL,
		})
	}
	return r, nil
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
