package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// RefusedError is returned by Gate when the preflight is refused: the run
// never started.
type RefusedError struct {
	Reason     string
	Message    string
	Remaining  events.Units
	UpgradeURL string
	// RetryAfter is, for rate_limited, how long to wait before the
	// customer's next preflight (the reply's retry_after_ms).
	RetryAfter time.Duration
}

func (e *RefusedError) Error() string { return "agentbill: refused (" + e.Reason + "): " + e.Message }

// GateOptions says what a gated run may cost.
type GateOptions struct {
	CustomerID     string
	AgentID        string
	EstimatedUnits events.Units
	TaskRef        string
	TTL            time.Duration // 0: the server's default
}

// GateResult is what a gated run cost.
type GateResult struct {
	ReservationID string
	Record        *ledger.RecordReply
	// Unchecked: the service was unavailable and the fail policy is Allow;
	// fn ran without a reservation and nothing was recorded.
	Unchecked bool
}

// Gate preflights, runs fn only if approved, then records the units fn
// reports. If fn returns an error or panics, the reservation is released
// (and a panic is re-raised after). A refusal returns *RefusedError and fn
// never runs. When the service is unavailable, the client's fail policy
// decides: Deny returns the error and fn never runs; Allow runs fn
// unchecked and records nothing (GateResult.Unchecked).
func (c *Client) Gate(ctx context.Context, o GateOptions, fn func(ctx context.Context) (events.Units, error)) (res *GateResult, err error) {
	req := ledger.PreflightRequest{AgentID: o.AgentID, EstimatedUnits: &o.EstimatedUnits, TaskRef: o.TaskRef}
	if o.TTL > 0 {
		req.TTL = o.TTL.String()
	}
	pf, err := c.Preflight(ctx, o.CustomerID, req)
	if err != nil {
		return nil, err
	}
	if !pf.Approved {
		return nil, &RefusedError{Reason: pf.Reason, Message: pf.Message, Remaining: pf.RemainingUnits.Units, UpgradeURL: pf.UpgradeURL,
			RetryAfter: time.Duration(pf.RetryAfterMs) * time.Millisecond}
	}
	if pf.Unchecked {
		// Allow policy, service unavailable: there is no reservation to
		// settle, and the service is down, so the run's usage is not
		// recorded (SkippedChecks counts it for reconciliation).
		_, runErr := fn(ctx)
		return &GateResult{Unchecked: true}, runErr
	}
	res = &GateResult{ReservationID: pf.ReservationID}
	settled := false
	defer func() {
		if settled {
			return
		}
		// fn panicked: give the hold back, then let the panic continue.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
		defer cancel()
		_, _ = c.Release(rctx, o.CustomerID, pf.ReservationID)
	}()
	units, runErr := fn(ctx)
	if runErr != nil {
		settled = true
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
		defer cancel()
		if _, relErr := c.Release(rctx, o.CustomerID, pf.ReservationID); relErr != nil {
			return res, errors.Join(runErr, fmt.Errorf("agentbill: release after failed run: %w", relErr))
		}
		return res, runErr
	}
	settled = true
	rec, err := c.Record(context.WithoutCancel(ctx), o.CustomerID, ledger.RecordRequest{
		AgentID: o.AgentID, Units: &units, ReservationID: pf.ReservationID,
	})
	if err != nil {
		return res, fmt.Errorf("agentbill: record after run: %w", err)
	}
	res.Record = rec
	return res, nil
}
