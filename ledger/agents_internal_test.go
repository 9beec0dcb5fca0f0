package ledger

import (
	"maps"
	"slices"
	"testing"
)

// agentState is what a customer's agents hold, for comparing.
func agentState(as *agents) map[string]string {
	m := make(map[string]string)
	for id, a := range as.all() {
		if a.id != id {
			m[id] = "id " + a.id
			continue
		}
		m[id] = a.Used.String() + "/" + a.Reserved.String()
	}
	return m
}

// One agent is held alone; the second makes the map, which holds both and
// keeps the one last used first; a new period forgets the idle agents and
// holds one left alone again.
func TestAgentsOneThenMany(t *testing.T) {
	var as agents
	if as.len() != 0 || as.get("a") != nil || len(agentState(&as)) != 0 {
		t.Fatalf("empty: %+v", as)
	}
	a := as.use("a")
	a.Used, a.Reserved = parsed(3, 0), parsed(1, 0)
	if as.len() != 1 || as.many != nil || as.get("a") != a || as.get("b") != nil || as.use("a") != a {
		t.Fatalf("one agent: %+v", as)
	}
	b := as.use("b")
	b.Used = parsed(2, 0)
	if as.len() != 2 || as.many == nil || as.one != b || as.get("a") != a || as.get("b") != b {
		t.Fatalf("two agents: %+v", as)
	}
	if as.use("a") != a || as.one != a {
		t.Fatalf("using a again: one is %+v", as.one)
	}
	c := as.use("c")
	if got, want := agentState(&as), map[string]string{"a": "3/1", "b": "2/0", "c": "0/0"}; !maps.Equal(got, want) {
		t.Fatalf("three agents: %v, want %v", got, want)
	}
	if got := as.sortedIDs(nil); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("sortedIDs = %v", got)
	}
	c.Reserved = parsed(4, 0)
	as.newPeriod() // a and c hold something; b is forgotten
	if got, want := agentState(&as), map[string]string{"a": "0/1", "c": "0/4"}; !maps.Equal(got, want) || as.len() != 2 {
		t.Fatalf("after a new period: %v, want %v", got, want)
	}
	if one := as.one; one != a && one != c {
		t.Fatalf("after a new period one is %+v, not an agent kept", one)
	}
	c.Reserved = parsed(0, 0)
	as.newPeriod() // only a is left: held alone
	if as.many != nil || as.one != a || as.len() != 1 || as.get("c") != nil {
		t.Fatalf("after a second new period: %+v", as)
	}
	a.Reserved = parsed(0, 0)
	as.newPeriod()
	if as.many != nil || as.one != nil || as.len() != 0 {
		t.Fatalf("after the last agent went idle: %+v", as)
	}
}

// A restored customer's agents point into the slab, with their IDs.
func TestAgentsRestore(t *testing.T) {
	use := []AgentUsage{{Used: parsed(1, 0)}, {Used: parsed(2, 0)}}
	var one, two, dup agents
	if !one.restore([]string{"x"}, use[:1]) || one.one != &use[0] || one.many != nil || one.get("x") != &use[0] {
		t.Fatalf("one restored: %+v", one)
	}
	if !two.restore([]string{"x", "y"}, use) || two.get("x") != &use[0] || two.get("y") != &use[1] || two.len() != 2 {
		t.Fatalf("two restored: %+v", two)
	}
	if dup.restore([]string{"x", "x"}, make([]AgentUsage, 2)) {
		t.Fatal("an agent listed twice was restored")
	}
}
