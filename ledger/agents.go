package ledger

import (
	"iter"
	"slices"

	"github.com/agentbill/agentbill/events"
)

// agents is a customer's agents and their usage. Most customers run one
// agent, and a map holding one costs about 240 bytes (its header and a
// group of eight slots): at a million customers those maps were 240 MB,
// a third of what a restore allocated (BenchmarkSnapshot/used/read). So
// one agent is held alone, and the map is made for the second.
//
// With many nil, one is the only agent (nil: none). With many set, many
// holds every agent and one is the agent last used, also in many: a run's
// record follows its preflight, so it finds its agent without the map,
// which at a million customers is four misses of the processor's caches
// (map, group, key, value).
type agents struct {
	one  *AgentUsage
	many map[string]*AgentUsage
}

func (as *agents) len() int {
	switch {
	case as.many != nil:
		return len(as.many)
	case as.one != nil:
		return 1
	}
	return 0
}

// get returns agent id's usage, or nil if the customer has none.
func (as *agents) get(id string) *AgentUsage {
	if a := as.one; a != nil && a.id == id {
		return a
	}
	return as.many[id]
}

// use returns agent id's usage, made if the customer has none, and makes
// it the one last used. id should be interned (State.internAgentID): it
// is kept.
func (as *agents) use(id string) *AgentUsage {
	if a := as.one; a != nil && a.id == id {
		return a
	}
	a := as.many[id]
	if a == nil {
		a = &AgentUsage{id: id}
		switch {
		case as.one == nil:
			as.one = a
			return a
		case as.many == nil:
			as.many = map[string]*AgentUsage{as.one.id: as.one}
		}
		as.many[id] = a
	}
	as.one = a
	return a
}

// all yields each agent's ID and usage, in no particular order.
func (as *agents) all() iter.Seq2[string, *AgentUsage] {
	return func(yield func(string, *AgentUsage) bool) {
		if as.many == nil {
			if as.one != nil {
				yield(as.one.id, as.one)
			}
			return
		}
		for id, a := range as.many {
			if !yield(id, a) {
				return
			}
		}
	}
}

// sortedIDs appends the agents' IDs to ids, sorted.
func (as *agents) sortedIDs(ids []string) []string {
	for id := range as.all() {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// newPeriod zeroes every agent's usage and forgets the agents that hold
// nothing; one agent left is held alone again.
func (as *agents) newPeriod() {
	if as.many == nil {
		if a := as.one; a != nil {
			a.Used = events.Zero
			if a.Reserved.IsZero() {
				as.one = nil
			}
		}
		return
	}
	as.one = nil
	for id, a := range as.many {
		a.Used = events.Zero
		if a.Reserved.IsZero() {
			delete(as.many, id)
		} else {
			as.one = a
		}
	}
	if len(as.many) <= 1 {
		as.many = nil // as.one is the one left, if any
	}
}

// restore sets the agents a snapshot lists (ids[k]'s usage use[k]), which
// must not be set already, and reports false if an ID is listed twice.
func (as *agents) restore(ids []string, use []AgentUsage) bool {
	for k := range use {
		use[k].id = ids[k]
	}
	switch len(use) {
	case 0:
		return true
	case 1:
		as.one = &use[0]
		return true
	}
	as.many = make(map[string]*AgentUsage, len(use))
	for k := range use {
		as.many[ids[k]] = &use[k]
	}
	as.one = &use[0]
	return len(as.many) == len(use)
}
