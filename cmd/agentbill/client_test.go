package main

import (
	"reflect"
	"testing"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
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
	u := func(s string) *events.Units { v := events.MustParseUnits(s); return &v }
	for _, c := range []struct {
		in   string
		want ledger.ScopeLimitRequest
		bad  bool
	}{
		{"team=research:100", ledger.ScopeLimitRequest{Dimension: "team", Value: "research", Limit: u("100")}, false},
		{"team=research:100:day", ledger.ScopeLimitRequest{Dimension: "team", Value: "research", Limit: u("100"), Period: "day"}, false},
		{"user=a:b:2.5:week", ledger.ScopeLimitRequest{Dimension: "user", Value: "a:b", Limit: u("2.5"), Period: "week"}, false},
		{"team=research", ledger.ScopeLimitRequest{}, true},
		{"team:100", ledger.ScopeLimitRequest{}, true},
		{"team=research:lots", ledger.ScopeLimitRequest{}, true},
		{"team=research:100:year", ledger.ScopeLimitRequest{}, true},
		{"team=research::day", ledger.ScopeLimitRequest{}, true},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := scopeLimitFlag(c.in)
			if (err != nil) != c.bad || (!c.bad && (got.Dimension != c.want.Dimension || got.Value != c.want.Value ||
				got.Limit.Cmp(*c.want.Limit) != 0 || got.Period != c.want.Period)) {
				t.Fatalf("scopeLimitFlag(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.bad)
			}
		})
	}
}
