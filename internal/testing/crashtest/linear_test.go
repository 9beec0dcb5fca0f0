package crashtest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/anishathalye/porcupine"
)

// A linearizability check of each customer's history with porcupine: the
// operations clients invoked, with what they were told and when, must be
// explainable by some order of one-at-a-time steps of a sequential budget,
// each taking effect between its call and its return. Calls whose outcome
// the client never learned may have happened or not.

// linearTimeout bounds the check (short and full runs).
const (
	linearTimeoutShort = 20 * time.Second
	linearTimeoutFull  = 2 * time.Minute
)

type opKind int

const (
	opPreflight opKind = iota
	opRecord
	opRelease
	opTopUp
)

func (k opKind) String() string {
	return [...]string{"preflight", "record", "release", "topup"}[k]
}

// opIn is an operation as invoked. Amounts are whole units in this load.
type opIn struct {
	kind  opKind
	cid   string
	units int64  // preflight: estimated; record: used; topup: added
	resID string // record, release
}

// opOut is what the client was told.
type opOut struct {
	unknown   bool // no reply after all retries
	approved  bool // preflight
	resID     string
	remaining int64
}

// budget is the sequential specification's state: what remains, and the
// open holds by reservation ID (canonical, sorted "id=units;" so states
// compare with ==).
type budget struct {
	rem   int64
	holds string
}

func parseHolds(s string) map[string]int64 {
	m := map[string]int64{}
	for _, kv := range strings.Split(s, ";") {
		if id, u, ok := strings.Cut(kv, "="); ok {
			m[id], _ = strconv.ParseInt(u, 10, 64)
		}
	}
	return m
}

func formatHolds(m map[string]int64) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s=%d;", id, m[id])
	}
	return b.String()
}

// step returns the states the budget can be in after in, given out.
func step(s budget, in opIn, out opOut) []any {
	next := s
	holds := parseHolds(s.holds)
	switch in.kind {
	case opPreflight:
		if out.unknown {
			if in.units <= s.rem {
				next.rem -= in.units // a hold nobody will settle
				return []any{s, next}
			}
			return []any{s}
		}
		if !out.approved {
			if in.units > s.rem && out.remaining == s.rem {
				return []any{s}
			}
			return nil
		}
		if in.units > s.rem || out.remaining != s.rem-in.units || holds[out.resID] != 0 {
			return nil
		}
		next.rem -= in.units
		holds[out.resID] = in.units
	case opRecord, opRelease:
		hold, open := holds[in.resID]
		if !open {
			if out.unknown {
				return []any{s}
			}
			return nil
		}
		used := in.units
		if in.kind == opRelease {
			used = 0
		}
		next.rem += hold - used
		delete(holds, in.resID)
	case opTopUp:
		next.rem += in.units
	}
	next.holds = formatHolds(holds)
	if out.unknown {
		return []any{s, next}
	}
	if in.kind == opTopUp {
		// A top-up answers with the customer's status, and a retried one
		// (same key) with the status when the retry is answered (docs/PROTOCOL.md,
		// "Idempotency": duplicates return the first reply), after whatever happened
		// in between: its effect is checked, its reply is not.
		return []any{next}
	}
	if out.remaining != next.rem {
		return nil
	}
	return []any{next}
}

func budgetModel(limit int64) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{budget{rem: limit}} },
		Step: func(state, input, output any) []any {
			return step(state.(budget), input.(opIn), output.(opOut))
		},
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			for _, op := range h {
				cid := op.Input.(opIn).cid
				by[cid] = append(by[cid], op)
			}
			return slices.Collect(maps.Values(by))
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(opIn), output.(opOut)
			if out.unknown {
				return fmt.Sprintf("%s(%d %s) -> ?", in.kind, in.units, in.resID)
			}
			return fmt.Sprintf("%s(%d %s) -> approved=%v %s remaining %d", in.kind, in.units, in.resID, out.approved, out.resID, out.remaining)
		},
		DescribeState: func(state any) string {
			s := state.(budget)
			return fmt.Sprintf("remaining %d, holds %s", s.rem, s.holds)
		},
	}
	return nm.ToModel()
}

// wholeUnits reads an amount of this load (whole units) as an integer.
func wholeUnits(u events.Units) int64 {
	n, err := strconv.ParseInt(u.String(), 10, 64)
	if err != nil {
		panic(fmt.Sprintf("crashtest: amount %s is not whole", u))
	}
	return n
}

// The model must reject what a broken ledger would tell clients, or the
// check in every crash scenario could not fail.
func TestBudgetModelCatchesViolations(t *testing.T) {
	pf := func(units int64) opIn { return opIn{kind: opPreflight, cid: "c", units: units} }
	approved := func(id string, rem int64) opOut { return opOut{approved: true, resID: id, remaining: rem} }
	op := func(call, ret int64, in opIn, out opOut) porcupine.Operation {
		return porcupine.Operation{Input: in, Output: out, Call: call, Return: ret}
	}
	for _, c := range []struct {
		name string
		hist []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"two holds within the limit", []porcupine.Operation{
			op(0, 10, pf(40), approved("a", 20)), op(20, 30, pf(20), approved("b", 0))}, porcupine.Ok},
		{"concurrent calls may take effect in either order", []porcupine.Operation{
			op(0, 30, pf(40), approved("a", 0)), op(5, 25, pf(20), approved("b", 40))}, porcupine.Ok},
		{"an overspend", []porcupine.Operation{
			op(0, 10, pf(40), approved("a", 20)), op(20, 30, pf(30), approved("b", -10))}, porcupine.Illegal},
		{"a refusal that saw a stale balance", []porcupine.Operation{
			op(0, 10, pf(40), approved("a", 20)), op(20, 30, pf(30), opOut{remaining: 60})}, porcupine.Illegal},
		{"an approval reported twice", []porcupine.Operation{
			op(0, 10, pf(10), approved("a", 50)), op(20, 30, pf(10), approved("a", 40))}, porcupine.Illegal},
		{"a release that returned too much", []porcupine.Operation{
			op(0, 10, pf(10), approved("a", 50)),
			op(20, 30, opIn{kind: opRelease, cid: "c", resID: "a"}, opOut{remaining: 70})}, porcupine.Illegal},
		// A model that ignored top-ups would accept this refusal (70 > 60).
		{"a top-up's effect is checked, though its reply is not", []porcupine.Operation{
			op(0, 10, opIn{kind: opTopUp, cid: "c", units: 25}, opOut{remaining: 1000}),
			op(20, 30, pf(70), opOut{remaining: 60})}, porcupine.Illegal},
		{"a retried top-up may report a later status", []porcupine.Operation{
			op(0, 40, opIn{kind: opTopUp, cid: "c", units: 25}, opOut{remaining: 75}),
			op(10, 20, pf(10), approved("a", 75))}, porcupine.Ok},
		{"an unknown outcome may or may not have happened", []porcupine.Operation{
			op(0, 100, pf(50), opOut{unknown: true}), op(20, 30, pf(20), opOut{remaining: 10})}, porcupine.Ok},
	} {
		if got := porcupine.CheckOperationsTimeout(budgetModel(60), c.hist, 10*time.Second); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
