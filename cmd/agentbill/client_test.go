package main

import (
	"reflect"
	"testing"

	"github.com/agentbill/agentbill/events"
)

func TestScopeFlag(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags []string
		want  map[string]string
		bad   bool
	}{
		{"none", nil, nil, false},
		{"one", []string{"team=research"}, map[string]string{"team": "research"}, false},
		{"commas", []string{"team=research,user=alice"}, map[string]string{"team": "research", "user": "alice"}, false},
		{"repeated", []string{"team=research", "user=alice"}, map[string]string{"team": "research", "user": "alice"}, false},
		{"value with =", []string{"project=a=b"}, map[string]string{"project": "a=b"}, false},
		{"no value", []string{"team"}, nil, true},
		{"no dimension", []string{"=x"}, nil, true},
		{"twice", []string{"team=a", "team=b"}, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := scopeFlag(c.flags)
			if (err != nil) != c.bad || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("scopeFlag(%q) = %v, %v; want %v, error %v", c.flags, got, err, c.want, c.bad)
			}
		})
	}
}

func TestScopeLimitFlag(t *testing.T) {
	u := events.MustParseUnits
	for _, c := range []struct {
		in   string
		want events.ScopeLimit
		bad  bool
	}{
		{"team=research:100", events.ScopeLimit{Dimension: "team", Value: "research", Limit: u("100")}, false},
		{"team=research:100:day", events.ScopeLimit{Dimension: "team", Value: "research", Limit: u("100"), Period: "day"}, false},
		{"user=a:b:2.5:week", events.ScopeLimit{Dimension: "user", Value: "a:b", Limit: u("2.5"), Period: "week"}, false},
		{"team=research", events.ScopeLimit{}, true},
		{"team:100", events.ScopeLimit{}, true},
		{"team=research:lots", events.ScopeLimit{}, true},
		{"team=research:100:year", events.ScopeLimit{}, true},
		{"team=research::day", events.ScopeLimit{}, true},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := scopeLimitFlag(c.in)
			if (err != nil) != c.bad || (!c.bad && (got.Dimension != c.want.Dimension || got.Value != c.want.Value ||
				got.Limit.Cmp(c.want.Limit) != 0 || got.Period != c.want.Period)) {
				t.Fatalf("scopeLimitFlag(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.bad)
			}
		})
	}
}
