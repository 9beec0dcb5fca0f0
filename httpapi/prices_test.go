package httpapi

import (
	"strings"
	"testing"

	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
)

const testList = `{"list":"default","version":"v1","models":[{"id":"m","rates":{"input":"3","output":"15"}}]}`

// TestPricesOverHTTP: an admin key bound to no customer sets and reads a
// price list; usage recorded through POST /v1/events is then charged its
// price, with the breakdown in the reply; a key bound to one customer,
// an agent, bad lists and oversized bodies are refused, changing nothing.
func TestPricesOverHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.setBudget("c1", "10")
	r := e.do("POST", "/v1/prices", e.admin, testList)
	expect(t, r, 200, "")
	if r.body["changed"] != true || r.body["version"] != "v1" || num(t, r, "partitions") != "1" {
		t.Fatalf("set prices: %s", r.raw)
	}
	r = e.do("GET", "/v1/prices", e.admin, nil)
	expect(t, r, 200, "")
	if !strings.Contains(r.raw, `"version":"v1"`) || strings.Contains(r.raw, `"rates"`) {
		t.Fatalf("GET /v1/prices lists summaries: %s", r.raw)
	}
	r = e.do("GET", "/v1/prices?list=default", e.admin, nil)
	expect(t, r, 200, "")
	if !strings.Contains(r.raw, `"rates":{"input":3,"output":15}`) {
		t.Fatalf("GET /v1/prices?list=default shows the list: %s", r.raw)
	}
	expect(t, e.do("GET", "/v1/prices?list=nope", e.admin, nil), 404, "not_found")

	r = e.do("POST", "/v1/events", e.agent, `{"event_type":"run","usage":{"model":"m","input_tokens":1200,"output_tokens":400}}`)
	expect(t, r, 200, "")
	if num(t, r, "charged_units") != "0.0096" || !strings.Contains(r.raw, `"version":"v1"`) {
		t.Fatalf("usage charged: %s", r.raw)
	}

	bound := e.key(keys.RoleAdmin, "c1")
	expect(t, e.do("POST", "/v1/prices", bound, testList), 403, "permission_denied")
	expect(t, e.do("POST", "/v1/prices", e.anyAg, testList), 403, "permission_denied")
	expect(t, e.do("POST", "/v1/prices", e.admin, `{"list":"default","version":"v2","models":[{"id":"m","rates":{"bogus":"1"}}]}`),
		400, "invalid_argument")
	expect(t, e.do("POST", "/v1/prices", e.admin, strings.Replace(testList, `"15"`, `"16"`, 1)), 409, "conflict")
	huge := `{"list":"default","version":"v3","note":"` + strings.Repeat("x", ledger.PriceListBytesMax) + `","models":[]}`
	expect(t, e.do("POST", "/v1/prices", e.admin, huge), 400, "invalid_argument")
	r = e.do("GET", "/v1/prices?list=default", e.admin, nil)
	if !strings.Contains(r.raw, `"version":"v1"`) {
		t.Fatalf("a refused list changed the prices: %s", r.raw)
	}
}
