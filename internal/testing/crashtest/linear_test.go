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
	opGrant
)

func (k opKind) String() string {
	return [...]string{"preflight", "record", "release", "topup", "grant"}[k]
}

// opIn is an operation as invoked. Amounts are whole units in this load.
type opIn struct {
	kind  opKind
	cid   string
	units int64 // preflight: estimated; record: used; topup, grant: added
	min   int64 // preflight: min_units (0: none)
	scope int   // preflight: the team scope value's index in scopeTeams, or -1
	resID string
}

// opOut is what the client was told.
type opOut struct {
	unknown   bool // no reply after all retries
	approved  bool // preflight
	resID     string
	reserved  int64 // preflight: reserved_units
	partial   bool
	overdraft bool
	reason    string // preflight: a refusal's reason
	refused   string // preflight: the scope value that refused
	remaining int64  // signed: below zero only in an overdraft
}

// scopeTeams are the values of the load's one scope dimension, "team".
// Budgets limit some of them; a preflight may name one or none.
var scopeTeams = [...]string{"research", "support", "sales"}

// rules is one customer's budget as the sequential specification sees it:
// its limit, its overdraft, a limit per team (0: none) and its cap on
// open runs (0: none).
type rules struct {
	limit     int64
	overdraft int64
	teams     [len(scopeTeams)]int64
	maxRuns   int
}

// budget is the sequential specification's state: what remains (signed),
// what each team has used and holds, holds nobody will settle (their
// client never learned of them), and the open holds by reservation ID
// (canonical, sorted "id=units/team;" so states compare with ==).
type budget struct {
	started bool
	rem     int64
	spent   [len(scopeTeams)]int64
	lost    int
	holds   string
}

type hold struct {
	units int64
	scope int
}

func parseHolds(s string) map[string]hold {
	m := map[string]hold{}
	for _, kv := range strings.Split(s, ";") {
		id, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		u, sc, _ := strings.Cut(v, "/")
		var h hold
		h.units, _ = strconv.ParseInt(u, 10, 64)
		h.scope, _ = strconv.Atoi(sc)
		m[id] = h
	}
	return m
}

func formatHolds(m map[string]hold) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s=%d/%d;", id, m[id].units, m[id].scope)
	}
	return b.String()
}

// decide is the specification of a preflight: the units it holds, or
// why it is refused (and the scope value that refused). The limits are
// checked in the ledger's documented order: each scope limit, the run
// cap, then the customer's remaining plus its overdraft; a request with
// min_units gets the most that fits everywhere, if that is at least
// min_units (docs/PROTOCOL.md, "Preflight").
func (r rules) decide(s budget, nholds int, in opIn) (units int64, reason, refused string) {
	need := in.units
	if in.min > 0 {
		need = in.min
	}
	units = in.units
	if in.scope >= 0 && r.teams[in.scope] > 0 {
		left := r.teams[in.scope] - s.spent[in.scope]
		if left < need {
			return 0, "scope_limit_exceeded", scopeTeams[in.scope]
		}
		units = min(units, left)
	}
	if r.maxRuns > 0 && nholds+s.lost >= r.maxRuns {
		return 0, "concurrency_limit_exceeded", ""
	}
	left := s.rem + r.overdraft
	if left < need {
		return 0, "budget_exhausted", ""
	}
	return min(units, left), "", ""
}

// step returns the states the budget can be in after in, given out.
func (r rules) step(s budget, in opIn, out opOut) []any {
	if !s.started {
		s = budget{started: true, rem: r.limit}
	}
	next := s
	holds := parseHolds(s.holds)
	switch in.kind {
	case opPreflight:
		units, reason, refused := r.decide(s, len(holds), in)
		if out.unknown {
			if reason != "" {
				return []any{s}
			}
			next.rem -= units // a hold nobody will settle
			next.lost++
			if in.scope >= 0 {
				next.spent[in.scope] += units
			}
			return []any{s, next}
		}
		if reason != "" {
			if !out.approved && out.reason == reason && out.refused == refused && out.remaining == s.rem {
				return []any{s}
			}
			return nil
		}
		inOverdraft := r.overdraft > 0 && s.rem < units
		if !out.approved || out.reserved != units || out.partial != (units < in.units) || out.overdraft != inOverdraft ||
			out.remaining != s.rem-units {
			return nil
		}
		if _, dup := holds[out.resID]; dup {
			return nil
		}
		next.rem -= units
		if in.scope >= 0 {
			next.spent[in.scope] += units
		}
		holds[out.resID] = hold{units: units, scope: in.scope}
	case opRecord, opRelease:
		h, open := holds[in.resID]
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
		next.rem += h.units - used
		if h.scope >= 0 {
			next.spent[h.scope] += used - h.units
		}
		delete(holds, in.resID)
	case opTopUp, opGrant:
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
		// in between: its effect is checked, its reply is not. A grant's
		// reply is its event's, so a retry repeats the first one.
		return []any{next}
	}
	if out.remaining != next.rem {
		return nil
	}
	return []any{next}
}

// budgetModel is the sequential specification of every customer, each
// with its rules (by customer ID).
func budgetModel(rulesOf map[string]rules) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{budget{}} },
		Step: func(state, input, output any) []any {
			in := input.(opIn)
			r, ok := rulesOf[in.cid]
			if !ok {
				panic("crashtest: no rules for customer " + in.cid)
			}
			return r.step(state.(budget), in, output.(opOut))
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
			call := fmt.Sprintf("%s(%d", in.kind, in.units)
			if in.min > 0 {
				call += fmt.Sprintf(" min %d", in.min)
			}
			if in.scope >= 0 && in.kind == opPreflight {
				call += " team " + scopeTeams[in.scope]
			}
			call += " " + in.resID + ")"
			switch {
			case out.unknown:
				return call + " -> ?"
			case in.kind != opPreflight:
				return fmt.Sprintf("%s -> remaining %d", call, out.remaining)
			case out.approved:
				return fmt.Sprintf("%s -> %s holds %d (partial %v, overdraft %v), remaining %d",
					call, out.resID, out.reserved, out.partial, out.overdraft, out.remaining)
			}
			return fmt.Sprintf("%s -> refused %s %s, remaining %d", call, out.reason, out.refused, out.remaining)
		},
		DescribeState: func(state any) string {
			s := state.(budget)
			return fmt.Sprintf("remaining %d, team use %v, %d lost holds, holds %s", s.rem, s.spent, s.lost, s.holds)
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
	const research, support = 0, 1
	plain := rules{limit: 60}
	scoped := rules{limit: 60, overdraft: 10, maxRuns: 2}
	scoped.teams[research] = 20
	model := budgetModel(map[string]rules{"c": plain, "s": scoped})
	pf := func(cid string, units int64) opIn { return opIn{kind: opPreflight, cid: cid, units: units, scope: -1} }
	team := func(in opIn, sc int) opIn { in.scope = sc; return in }
	atLeast := func(in opIn, m int64) opIn { in.min = m; return in }
	approved := func(id string, units, rem int64) opOut {
		return opOut{approved: true, resID: id, reserved: units, remaining: rem}
	}
	partial := func(o opOut) opOut { o.partial = true; return o }
	overdraft := func(o opOut) opOut { o.overdraft = true; return o }
	refused := func(reason, scope string, rem int64) opOut {
		return opOut{reason: reason, refused: scope, remaining: rem}
	}
	op := func(call, ret int64, in opIn, out opOut) porcupine.Operation {
		return porcupine.Operation{Input: in, Output: out, Call: call, Return: ret}
	}
	record := func(cid, id string, used, rem int64) porcupine.Operation {
		return op(40, 50, opIn{kind: opRecord, cid: cid, resID: id, units: used, scope: -1}, opOut{remaining: rem})
	}
	for _, c := range []struct {
		name string
		hist []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"two holds within the limit", []porcupine.Operation{
			op(0, 10, pf("c", 40), approved("a", 40, 20)), op(20, 30, pf("c", 20), approved("b", 20, 0))}, porcupine.Ok},
		{"concurrent calls may take effect in either order", []porcupine.Operation{
			op(0, 30, pf("c", 40), approved("a", 40, 0)), op(5, 25, pf("c", 20), approved("b", 20, 40))}, porcupine.Ok},
		{"an overspend", []porcupine.Operation{
			op(0, 10, pf("c", 40), approved("a", 40, 20)), op(20, 30, pf("c", 30), approved("b", 30, -10))}, porcupine.Illegal},
		{"a refusal that saw a stale balance", []porcupine.Operation{
			op(0, 10, pf("c", 40), approved("a", 40, 20)), op(20, 30, pf("c", 30), refused("budget_exhausted", "", 60))}, porcupine.Illegal},
		{"a refusal with the wrong reason", []porcupine.Operation{
			op(0, 10, pf("c", 40), approved("a", 40, 20)), op(20, 30, pf("c", 30), refused("ceiling_exceeded", "", 20))}, porcupine.Illegal},
		{"an approval reported twice", []porcupine.Operation{
			op(0, 10, pf("c", 10), approved("a", 10, 50)), op(20, 30, pf("c", 10), approved("a", 10, 40))}, porcupine.Illegal},
		{"a release that returned too much", []porcupine.Operation{
			op(0, 10, pf("c", 10), approved("a", 10, 50)),
			op(20, 30, opIn{kind: opRelease, cid: "c", resID: "a", scope: -1}, opOut{remaining: 70})}, porcupine.Illegal},
		// A model that ignored top-ups would accept this refusal (70 > 60).
		{"a top-up's effect is checked, though its reply is not", []porcupine.Operation{
			op(0, 10, opIn{kind: opTopUp, cid: "c", units: 25, scope: -1}, opOut{remaining: 1000}),
			op(20, 30, pf("c", 70), refused("budget_exhausted", "", 60))}, porcupine.Illegal},
		{"a retried top-up may report a later status", []porcupine.Operation{
			op(0, 40, opIn{kind: opTopUp, cid: "c", units: 25, scope: -1}, opOut{remaining: 75}),
			op(10, 20, pf("c", 10), approved("a", 10, 75))}, porcupine.Ok},
		{"a grant's reply is checked", []porcupine.Operation{
			op(0, 10, opIn{kind: opGrant, cid: "c", units: 25, scope: -1}, opOut{remaining: 60})}, porcupine.Illegal},
		{"a grant is drawn like the allowance", []porcupine.Operation{
			op(0, 10, opIn{kind: opGrant, cid: "c", units: 25, scope: -1}, opOut{remaining: 85}),
			op(20, 30, pf("c", 80), approved("a", 80, 5))}, porcupine.Ok},
		{"an unknown outcome may or may not have happened", []porcupine.Operation{
			op(0, 100, pf("c", 50), opOut{unknown: true}), op(20, 30, pf("c", 20), refused("budget_exhausted", "", 10))}, porcupine.Ok},

		{"a team's holds stop at its limit", []porcupine.Operation{
			op(0, 10, team(pf("s", 15), research), approved("a", 15, 45)),
			op(20, 30, team(pf("s", 10), research), refused("scope_limit_exceeded", "research", 45))}, porcupine.Ok},
		{"a team passed by a hold", []porcupine.Operation{
			op(0, 10, team(pf("s", 15), research), approved("a", 15, 45)),
			op(20, 30, team(pf("s", 10), research), approved("b", 10, 35))}, porcupine.Illegal},
		{"a refusal naming the wrong scope", []porcupine.Operation{
			op(0, 10, team(pf("s", 25), research), refused("scope_limit_exceeded", "support", 60))}, porcupine.Illegal},
		{"an unlimited team is limited only by the customer", []porcupine.Operation{
			op(0, 10, team(pf("s", 25), support), approved("a", 25, 35))}, porcupine.Ok},
		{"a team's record frees what the hold did not use", []porcupine.Operation{
			op(0, 10, team(pf("s", 15), research), approved("a", 15, 45)), record("s", "a", 5, 55),
			op(60, 70, team(pf("s", 15), research), approved("b", 15, 40))}, porcupine.Ok},
		{"a partial hold is what fits the tightest limit", []porcupine.Operation{
			op(0, 10, team(atLeast(pf("s", 30), 5), research), partial(approved("a", 20, 40)))}, porcupine.Ok},
		{"a partial hold larger than what fits", []porcupine.Operation{
			op(0, 10, team(atLeast(pf("s", 30), 5), research), partial(approved("a", 25, 35)))}, porcupine.Illegal},
		{"a partial hold not called partial", []porcupine.Operation{
			op(0, 10, team(atLeast(pf("s", 30), 5), research), approved("a", 20, 40))}, porcupine.Illegal},
		{"min_units that do not fit are refused", []porcupine.Operation{
			op(0, 10, team(pf("s", 20), research), approved("a", 20, 40)),
			op(20, 30, team(atLeast(pf("s", 10), 1), research), refused("scope_limit_exceeded", "research", 40))}, porcupine.Ok},
		{"a hold into the overdraft says so", []porcupine.Operation{
			op(0, 10, pf("s", 55), approved("a", 55, 5)), record("s", "a", 55, 5),
			op(60, 70, pf("s", 12), overdraft(approved("b", 12, -7)))}, porcupine.Ok},
		{"an overdraft hold not flagged", []porcupine.Operation{
			op(0, 10, pf("s", 55), approved("a", 55, 5)), record("s", "a", 55, 5),
			op(60, 70, pf("s", 12), approved("b", 12, -7))}, porcupine.Illegal},
		{"a hold past the overdraft", []porcupine.Operation{
			op(0, 10, pf("s", 55), approved("a", 55, 5)), record("s", "a", 55, 5),
			op(60, 70, pf("s", 16), overdraft(approved("b", 16, -11)))}, porcupine.Illegal},
		{"the run cap refuses a third open run", []porcupine.Operation{
			op(0, 10, pf("s", 1), approved("a", 1, 59)), op(20, 30, pf("s", 1), approved("b", 1, 58)),
			op(40, 50, pf("s", 1), refused("concurrency_limit_exceeded", "", 58))}, porcupine.Ok},
		{"a third open run", []porcupine.Operation{
			op(0, 10, pf("s", 1), approved("a", 1, 59)), op(20, 30, pf("s", 1), approved("b", 1, 58)),
			op(40, 50, pf("s", 1), approved("c", 1, 57))}, porcupine.Illegal},
		{"a hold whose outcome is unknown may still count as a run", []porcupine.Operation{
			op(0, 100, pf("s", 1), opOut{unknown: true}), op(20, 30, pf("s", 1), approved("b", 1, 58)),
			op(40, 50, pf("s", 1), refused("concurrency_limit_exceeded", "", 58))}, porcupine.Ok},
	} {
		if got := porcupine.CheckOperationsTimeout(model, c.hist, 10*time.Second); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
