package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go/jetstream"
)

// VerifyRoundsMax bounds how many times VerifyState re-reads customers
// whose balances moved while it compared them.
const VerifyRoundsMax = 5

// Mismatch is one customer whose replayed state differs from the live one.
type Mismatch struct {
	CustomerID string `json:"customer_id"`
	Replayed   string `json:"replayed"` // status JSON
	Live       string `json:"live"`
}

// StateReport is what VerifyState found.
type StateReport struct {
	Seq        uint64     `json:"seq"` // the log is replayed to here
	Customers  int        `json:"customers"`
	Compared   int        `json:"compared"`
	Mismatches []Mismatch `json:"mismatches,omitempty"`
	Unsettled  []string   `json:"unsettled,omitempty"` // kept changing; not compared
}

// VerifyState replays the whole log and compares every customer's status
// with the live writer's. Each live status says the sequence it reflects
// (as_of_seq); the replay is carried on to it, and a customer is compared
// only if none of its events lies after that sequence, so traffic during
// the check cannot cause a false mismatch (a busy customer is re-read, up
// to VerifyRoundsMax times). def is the default budget unknown customers
// read as; both sides must use the same one.
func VerifyState(ctx context.Context, js jetstream.JetStream, live *client.Client, def *ledger.DefaultBudget, progress func(seq, last uint64)) (*StateReport, error) {
	st := ledger.NewState()
	st.Default = def
	lastEvent := map[string]uint64{} // customer -> sequence of its last event
	apply := func(seq uint64, e *events.Envelope) error {
		st.Apply(e)
		lastEvent[e.CustomerID] = seq
		return nil
	}
	seq, err := projections.Replay(ctx, js, projections.ReplayStop{Progress: progress}, apply)
	if err != nil {
		return nil, err
	}
	rep := &StateReport{Seq: seq}
	var ids []string
	st.CustomerIDs(func(id string) { ids = append(ids, id) })
	sort.Strings(ids)
	rep.Customers = len(ids)
	for round := 0; len(ids) > 0; round++ {
		if round == VerifyRoundsMax {
			rep.Unsettled = ids
			break
		}
		type liveStatus struct {
			id string
			st *ledger.StatusReply
		}
		got := make([]liveStatus, 0, len(ids))
		maxSeq := rep.Seq
		for _, id := range ids {
			s, err := live.Status(ctx, id)
			if err != nil {
				return rep, fmt.Errorf("live status of %s: %w", id, err)
			}
			got = append(got, liveStatus{id, s})
			maxSeq = max(maxSeq, s.AsOfSeq)
		}
		if maxSeq > rep.Seq { // carry the replay on to what the live side saw
			n, err := projections.Replay(ctx, js, projections.ReplayStop{StartSeq: rep.Seq + 1, UntilSeq: maxSeq}, apply)
			if err != nil {
				return rep, err
			}
			rep.Seq = max(rep.Seq, n)
		}
		ids = ids[:0]
		now := time.Now()
		for _, g := range got {
			if lastEvent[g.id] > g.st.AsOfSeq {
				ids = append(ids, g.id) // moved after the live read: read again
				continue
			}
			mine, err := st.Status(g.id, now)
			if err != nil {
				return rep, err
			}
			rep.Compared++
			a, b := statusJSON(mine), statusJSON(g.st)
			if a != b {
				rep.Mismatches = append(rep.Mismatches, Mismatch{CustomerID: g.id, Replayed: a, Live: b})
			}
		}
	}
	return rep, nil
}

// statusJSON is a status without its as_of_seq, for comparison.
func statusJSON(s *ledger.StatusReply) string {
	c := *s
	c.AsOfSeq = 0
	b, _ := json.Marshal(&c)
	return string(b)
}
