package ops

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
)

// TestTableIsConsistent: every operation can decode and run; no two claim
// one HTTP method and path, or one tool name; every tool has a summary and
// a schema that is a JSON object.
func TestTableIsConsistent(t *testing.T) {
	routes, tools := map[string]string{}, map[string]string{}
	for _, op := range Table() {
		if op.Name == "" || op.Action == "" || op.New == nil || op.Run == nil {
			t.Errorf("op %q: name, action, New and Run are required", op.Name)
		}
		if op.HTTP == nil && op.Tool == nil {
			t.Errorf("op %s: offered by no transport", op.Name)
		}
		for _, rt := range op.HTTP {
			k := rt.Method + " " + rt.Path
			if prev, ok := routes[k]; ok {
				t.Errorf("%s: claimed by %s and %s", k, prev, op.Name)
			}
			routes[k] = op.Name
			if rt.URL != nil && rt.Body != nil {
				t.Errorf("%s: a route reads the URL or a body, not both", k)
			}
		}
		if tl := op.Tool; tl != nil {
			if prev, ok := tools[tl.Name]; ok {
				t.Errorf("tool %s: claimed by %s and %s", tl.Name, prev, op.Name)
			}
			tools[tl.Name] = op.Name
			var schema map[string]any
			if err := json.Unmarshal(tl.Schema, &schema); err != nil || schema["type"] != "object" {
				t.Errorf("tool %s: schema is not a JSON object schema: %v", tl.Name, err)
			}
			if tl.Description == "" || tl.Summary == nil {
				t.Errorf("tool %s: description and summary are required", tl.Name)
			}
		}
	}
}

// TestCustomer is the one rule of which customer a call is for.
func TestCustomer(t *testing.T) {
	agentOf := func(cid string) *keys.Key { return &keys.Key{ID: "k", Role: keys.RoleAgent, CustomerID: cid} }
	auditor := &keys.Key{ID: "k", Role: keys.RoleAuditor}
	for _, tt := range []struct {
		name, named string
		k           *keys.Key
		action      keys.Action
		def         string
		want        string
		code        ledger.Code
	}{
		{"named", "c1", agentOf(""), keys.ActionSpend, "", "c1", ""},
		{"the key's own", "", agentOf("c1"), keys.ActionSpend, "default", "c1", ""},
		{"the default (HTTP)", "", agentOf(""), keys.ActionSpend, "default", "default", ""},
		{"no default (MCP)", "", agentOf(""), keys.ActionSpend, "", "", ledger.CodeInvalidArgument},
		{"no key, named (stdio)", "c1", nil, keys.ActionSpend, "", "c1", ""},
		{"no key, none named (stdio)", "", nil, keys.ActionSpend, "", "", ledger.CodeInvalidArgument},
		{"bad ID", "a\x00b", nil, keys.ActionSpend, "", "", ledger.CodeInvalidArgument},
		{"bound to another", "c2", agentOf("c1"), keys.ActionSpend, "", "", ledger.CodePermissionDenied},
		{"role cannot", "c1", auditor, keys.ActionSpend, "", "", ledger.CodePermissionDenied},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Customer(tt.named, tt.k, tt.action, tt.def)
			if code := codeOf(err); got != tt.want || code != tt.code {
				t.Fatalf("got %q, %v; want %q with code %q", got, err, tt.want, tt.code)
			}
		})
	}
}

func TestAllCustomers(t *testing.T) {
	var refusals *Op
	for _, op := range Table() {
		if op.Name == "recent_refusals" {
			refusals = op
		}
	}
	unbound := &keys.Key{ID: "k", Role: keys.RoleAgent}
	if _, err := refusals.customer("", unbound, ""); codeOf(err) != ledger.CodePermissionDenied || !strings.Contains(err.Error(), "name a customer_id") {
		t.Fatalf("every customer with an agent key: %v, want permission denied with the hint", err)
	}
	for _, k := range []*keys.Key{nil, {ID: "k", Role: keys.RoleAuditor}} {
		if cid, err := refusals.customer("", k, ""); err != nil || cid != "" {
			t.Fatalf("every customer with key %v: %q %v, want every customer", k, cid, err)
		}
	}
	if cid, err := refusals.customer("", &keys.Key{ID: "k", Role: keys.RoleAgent, CustomerID: "c1"}, ""); err != nil || cid != "c1" {
		t.Fatalf("a bound key: %q %v, want its customer", cid, err)
	}
}

// codeOf is the code a transport would answer err with ("" for nil).
func codeOf(err error) ledger.Code {
	if err == nil {
		return ""
	}
	if errors.Is(err, keys.ErrPermissionDenied) {
		return ledger.CodePermissionDenied
	}
	return ledger.ErrorCode(err)
}
