package ops

import (
	"context"
	"net/http"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
)

// Table returns every operation the adapters offer, in a fixed order. The
// HTTP paths and the MCP tools are docs/PROTOCOL.md's. Adding an operation
// is adding an entry here.
func Table() []*Op {
	return []*Op{
		{
			Name: "preflight", Action: keys.ActionSpend,
			New: newOf[ledger.PreflightRequest], Run: send((*client.Client).Preflight),
			HTTP: []Route{{Method: http.MethodPost, Path: "/v1/preflight"}},
			Tool: &Tool{Name: "preflight", Title: "Reserve budget before a run", Description: preflightDoc,
				Schema: preflightSchema, Summary: preflightSummary},
		},
		{
			Name: "record", Action: keys.ActionSpend,
			New: newOf[ledger.RecordRequest], Run: send((*client.Client).Record),
			HTTP: []Route{{Method: http.MethodPost, Path: "/v1/events", Body: newBody[RecordBody]}},
			Tool: &Tool{Name: "record_usage", Title: "Record the units a run used", Description: recordDoc,
				Schema: recordSchema, Summary: recordSummary},
		},
		{
			Name: "release", Action: keys.ActionSpend,
			New: newOf[ledger.ReleaseRequest], Run: send((*client.Client).ReleaseWith),
			HTTP: []Route{{Method: http.MethodPost, Path: "/v1/release"}},
			Tool: &Tool{Name: "release", Title: "Release a reservation", Description: releaseDoc,
				Schema: releaseSchema, Idempotent: true, Summary: releaseSummary},
		},
		{
			Name: "extend", Action: keys.ActionSpend,
			New: newOf[ledger.ExtendRequest], Run: send((*client.Client).ExtendWith),
			HTTP: []Route{{Method: http.MethodPost, Path: "/v1/extend"}},
		},
		{
			Name: "status", Action: keys.ActionRead,
			New: newOf[ledger.StatusRequest], Run: send(status),
			HTTP: []Route{
				{Method: http.MethodGet, Path: "/v1/budget", URL: queryCustomer, View: budgetView},
				{Method: http.MethodGet, Path: "/v1/customers/{id}", URL: pathCustomer},
			},
			Tool: &Tool{Name: "budget_status", Title: "A customer's budget position", Description: statusDoc,
				Schema: statusSchema, ReadOnly: true, Summary: statusSummary},
		},
		{
			Name: "budget", Action: keys.ActionAdmin,
			New: newOf[ledger.BudgetRequest], Run: send((*client.Client).SetBudget),
			HTTP: []Route{{Method: http.MethodPut, Path: "/v1/budget", Body: newBody[BudgetBody], View: budgetView}},
		},
		{
			Name: "topup", Action: keys.ActionAdmin,
			New: newOf[ledger.TopUpRequest], Run: send((*client.Client).TopUp),
			HTTP: []Route{{Method: http.MethodPost, Path: "/v1/topup", View: budgetView}},
		},
		{
			Name: "grant", Action: keys.ActionAdmin,
			New: newOf[ledger.GrantRequest], Run: send((*client.Client).Grant),
			HTTP: []Route{{Method: http.MethodPost, Path: "/v1/grants"}},
			Tool: &Tool{Name: "grant_credits", Title: "Grant credits to a customer", Description: grantDoc,
				Schema: grantSchema, Summary: grantSummary},
		},
		{
			Name: "prices", Action: keys.ActionAdmin,
			AllCustomers: &AllCustomers{Action: keys.ActionAdmin, Hint: pricesHint},
			New:          newOf[PricesRequest], Run: setPrices,
			HTTP: []Route{{Method: http.MethodPost, Path: "/v1/prices", BodyBytesMax: ledger.PriceListBytesMax}},
		},
		{
			Name: "price_lists", Action: keys.ActionAdmin,
			AllCustomers: &AllCustomers{Action: keys.ActionAdmin, Hint: pricesHint},
			New:          newOf[PriceListsQuery], Run: priceLists,
			HTTP: []Route{{Method: http.MethodGet, Path: "/v1/prices", URL: priceListsQuery}},
		},
		{
			Name: "customer_events", Action: keys.ActionAudit,
			New: newOf[EventsQuery], Run: customerEvents,
			HTTP: []Route{{Method: http.MethodGet, Path: "/v1/customers/{id}/events", URL: eventsQuery}},
		},
		{
			Name: "recent_refusals", Action: keys.ActionRead,
			AllCustomers: &AllCustomers{Action: keys.ActionAudit, Hint: " (name a customer_id to read one customer's refusals)"},
			New:          newOf[RefusalsArgs], Run: recentRefusals,
			Tool: &Tool{Name: "recent_refusals", Title: "Recent refusals from the log", Description: refusalsDoc,
				Schema: refusalsSchema, ReadOnly: true, Summary: refusalsSummary},
		},
	}
}

// status is Client.Status in the shape of a client call with a request.
func status(c *client.Client, ctx context.Context, cid string, _ ledger.StatusRequest) (*ledger.StatusReply, error) {
	return c.Status(ctx, cid)
}
