package ledger_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/prices"
)

// The small world FuzzLedger's programs act on: few names, so commands
// collide on the same customers, agents, tasks and reservations.
var (
	fuzzCustomers = []string{"c0", "acme.prod"}
	fuzzAgents    = []string{"a0", "a1", "a2"}
	fuzzAmounts   = []string{"0", "1", "2.5", "10", "0.000000000000000001", "99.999", "1000", "1000000000000000"}
	fuzzPeriods   = []string{"day", "week", "month", "none"}
	fuzzTTLs      = []string{"1s", "1m", "15m", "24h"}
	fuzzSteps     = []time.Duration{time.Second, time.Minute, time.Hour, 24 * time.Hour, 31 * 24 * time.Hour}
)

// fuzzPrices is the price list of FuzzLedger's priced commands: model m
// with cache and long-context rates; model x is in no list (unpriced).
const fuzzPrices = `{"list":"default","version":"f1","models":[{"id":"m","rates":{"input":"3","output":"15","cache_read":"0.3"},
 "tiers":[{"above_input_tokens":20000,"rates":{"input":"6"}}],"request_fee":"0.001"}]}`

var fuzzModels = []string{"m", "x"}

// fuzzStepsMax bounds one program (4 bytes a step).
const fuzzStepsMax = 256

// FuzzLedger runs any sequence of commands, clock steps and sweeps on one
// State: Decide never panics, an error changes nothing, no used, reserved
// or top-up amount ever goes negative, a customer's reserved equals its
// open holds, an approved preflight never takes a customer past its limit
// plus top-ups (nor an agent past its agent limit), and replaying the log
// with Apply alone rebuilds the same balances (fixture.checkReplay).
func FuzzLedger(f *testing.F) {
	f.Add([]byte{0, 3, 2, 0, 2, 3, 0, 0, 3, 2, 0, 1, 6, 0, 0, 0})
	f.Add([]byte{0, 1, 3, 3, 2, 2, 1, 17, 2, 2, 2, 1, 7, 4, 0, 0, 2, 3, 0, 0, 8, 0, 0, 0})
	f.Add([]byte{0, 6, 0, 2, 1, 6, 0, 0, 2, 6, 0, 9, 3, 6, 0, 3, 4, 0, 1, 0, 5, 0, 0, 48})
	f.Add([]byte{0, 2, 1, 1, 2, 3, 0, 1, 7, 3, 0, 0, 2, 3, 0, 1, 8, 0, 0, 0, 3, 1, 0, 1})
	f.Add([]byte{0, 3, 2, 0, 2, 3, 0, 0x80, 3, 2, 0, 8, 2, 4, 1, 0xc0, 3, 5, 1, 0x18, 6, 0, 0, 0})
	f.Fuzz(func(t *testing.T, program []byte) {
		fx := newFixture(t)
		fx.setPrices(fuzzPrices)
		var holds []string
		for step := 0; step+4 <= len(program) && step/4 < fuzzStepsMax; step += 4 {
			op, a, b, c := program[step], int(program[step+1]), int(program[step+2]), int(program[step+3])
			cid := fuzzCustomers[(op>>4)%2]
			hold := "nope"
			if len(holds) > 0 {
				hold = holds[b%len(holds)]
			}
			var cmd ledger.Command
			switch op % 9 {
			case 0:
				r := &ledger.BudgetRequest{CustomerID: cid, Limit: up(fuzzAmounts[a%8]), Period: fuzzPeriods[b%4]}
				if c&1 != 0 {
					r.Thresholds = []events.Units{events.MustParseUnits("0.5"), events.MustParseUnits("0.8")}
				}
				if c&2 != 0 {
					r.AgentLimits = map[string]events.Units{"a0": events.MustParseUnits(fuzzAmounts[(c>>2)%8])}
				}
				cmd = r
			case 1:
				cmd = &ledger.TopUpRequest{CustomerID: cid, Units: up(fuzzAmounts[a%8])}
			case 2:
				r := &ledger.PreflightRequest{CustomerID: cid, AgentID: fuzzAgents[b%3],
					EstimatedUnits: up(fuzzAmounts[a%8]), TTL: fuzzTTLs[(c>>4)%4]}
				if c&1 != 0 {
					r.TaskRef = "t"
				}
				if c&2 != 0 {
					r.TaskCeiling = up(fuzzAmounts[(c>>2)%8])
				}
				if c&4 != 0 {
					r.Ceiling = up(fuzzAmounts[(c>>3)%8])
				}
				if c&8 != 0 {
					r.IdempotencyKey = fmt.Sprintf("k%d", b%4)
				}
				if c&128 != 0 { // priced: the estimate from the list (estimated_units the fallback if c&64)
					in, out := int64(a)*200, int64(c)*10
					r.UsageEstimate = &prices.Estimate{Model: fuzzModels[b%2], InputTokens: &in, MaxOutputTokens: &out}
					if c&64 == 0 {
						r.EstimatedUnits = nil
					}
				}
				cmd = r
			case 3:
				r := &ledger.RecordRequest{CustomerID: cid, AgentID: fuzzAgents[b%3], Units: up(fuzzAmounts[a%8])}
				if c&1 != 0 {
					r.ReservationID = hold
				}
				if c&2 != 0 {
					r.Success = ptrBool(false)
				}
				if c&4 != 0 {
					r.TaskRef = "t"
				}
				if c&8 != 0 { // usage to price (units the fallback unless c&16)
					in, out, cached := int64(a)*300, int64(b)*7, int64(a)*30
					r.Usage = &events.Usage{Model: fuzzModels[(c>>5)%2], InputTokens: &in, OutputTokens: &out, CacheReadTokens: &cached}
					if c&16 != 0 {
						r.Units = nil
					}
				}
				cmd = r
			case 4:
				cmd = &ledger.ReleaseRequest{CustomerID: cid, ReservationID: hold}
			case 5:
				cmd = &ledger.ExtendRequest{CustomerID: cid, ReservationID: hold, TTL: fuzzTTLs[c%4]}
			case 6:
				cmd = &ledger.StatusRequest{CustomerID: cid}
			case 7:
				fx.now = fx.now.Add(fuzzSteps[a%5])
			case 8:
				fx.sweep(ledger.ExpiriesPerCommandMax)
			}
			if cmd == nil {
				checkLedgerInvariants(t, fx.s)
				continue
			}
			reply, evs, err := fx.decide(cmd)
			if err != nil && ledger.ErrorCode(err) == "" {
				t.Fatalf("step %d: Decide(%T) error %v is not a *ledger.Error", step/4, cmd, err)
			}
			// A duplicate (same idempotency key) replays an old approval and
			// appends nothing: only a fresh approval is checked.
			if pr, ok := reply.(*ledger.PreflightReply); ok && pr.Approved && len(evs) > 0 {
				holds = append(holds, pr.ReservationID)
				checkFuzzApproval(t, fx.s, cmd.(*ledger.PreflightRequest))
			}
			checkLedgerInvariants(t, fx.s)
		}
	})
}

// checkLedgerInvariants checks every customer's amounts.
func checkLedgerInvariants(t *testing.T, s *ledger.State) {
	t.Helper()
	for _, cid := range fuzzCustomers {
		c := s.Customer(cid)
		if c == nil {
			continue
		}
		for name, u := range map[string]events.Units{"used": c.Used, "reserved": c.Reserved, "top_ups": c.TopUps} {
			if u.Sign() < 0 {
				t.Fatalf("customer %s: %s is %s", cid, name, u)
			}
		}
		held := events.Zero
		for _, r := range c.Open {
			held = held.Add(r.Units)
		}
		if held.Cmp(c.Reserved) != 0 {
			t.Fatalf("customer %s: reserved %s, but its open holds sum to %s", cid, c.Reserved, held)
		}
		for id, a := range c.Agents() {
			if a.Used.Sign() < 0 || a.Reserved.Sign() < 0 {
				t.Fatalf("customer %s agent %s: used %s reserved %s", cid, id, a.Used, a.Reserved)
			}
		}
	}
}

// checkFuzzApproval: right after an approval the customer's used plus
// reserved fits its limit plus top-ups, and the agent's fits its limit.
func checkFuzzApproval(t *testing.T, s *ledger.State, r *ledger.PreflightRequest) {
	t.Helper()
	c := s.Customer(r.CustomerID)
	if held, cap := c.Used.Add(c.Reserved), c.Limit.Add(c.TopUps); held.Cmp(cap) > 0 {
		t.Fatalf("approved %s for %s: used %s + reserved %s > limit %s + top-ups %s",
			r.EstimatedUnits, r.CustomerID, c.Used, c.Reserved, c.Limit, c.TopUps)
	}
	if lim, ok := c.AgentLimits[r.AgentID]; ok {
		if a := c.Agent(r.AgentID); a != nil && a.Used.Add(a.Reserved).Cmp(lim) > 0 {
			t.Fatalf("approved %s for agent %s: used %s + reserved %s > agent limit %s",
				r.EstimatedUnits, r.AgentID, a.Used, a.Reserved, lim)
		}
	}
}
