package httpapi

import (
	"context"
	"net/http"

	"github.com/agentbill/agentbill/internal/ops"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
)

// The /v1/ API is generated from the operation table (internal/ops): each
// route of each operation is one method of its path. Its REST forms are
// declared there, with the operation; these names keep them reachable
// from this package.
type (
	// RecordBody is POST /v1/events.
	RecordBody = ops.RecordBody
	// BudgetBody is PUT /v1/budget.
	BudgetBody = ops.BudgetBody
	// BudgetView is the reply of GET and PUT /v1/budget and POST /v1/topup.
	BudgetView = ops.BudgetView
	// EventsPage is the reply of GET /v1/customers/{id}/events.
	EventsPage = ops.EventsPage
)

// EstimatedUnitsDefault is a preflight's estimate when the request has
// none. The rule is the ledger's (ledger.EstimatedUnitsDefault), for every
// transport alike; the name stays here for callers that used it.
var EstimatedUnitsDefault = ledger.EstimatedUnitsDefault

// Bounds on GET /v1/customers/{id}/events (?limit=N).
const (
	EventsLimitDefault = ops.EventsLimitDefault
	EventsLimitMax     = ops.EventsLimitMax
)

// method is one method of a path: an operation and its route there.
type method struct {
	op    *ops.Op
	route ops.Route
}

// apiRoutes registers every route of the operation table.
func (s *Server) apiRoutes() {
	paths := []string{}
	byPath := map[string]map[string]method{}
	for _, op := range ops.Table() {
		for _, rt := range op.HTTP {
			if byPath[rt.Path] == nil {
				byPath[rt.Path] = map[string]method{}
				paths = append(paths, rt.Path)
			}
			byPath[rt.Path][rt.Method] = method{op: op, route: rt}
		}
	}
	for _, path := range paths {
		s.handle(path, byPath[path])
	}
}

// call decodes the request of m (the body, or the URL) and performs it
// with the key k: the customer is the one named, else the key's, else
// DefaultCustomer.
func (s *Server) call(ctx context.Context, r *http.Request, k *keys.Key, m method) (any, error) {
	in, err := decodeRequest(r, m)
	if err != nil {
		return nil, err
	}
	reply, err := m.op.Call(ctx, s.backend, k, DefaultCustomer, in)
	if err != nil {
		return nil, err
	}
	if m.route.View != nil {
		reply = m.route.View(reply)
	}
	return reply, nil
}

// decodeRequest reads a route's request: from the URL, or from the JSON
// body, in the route's own form (Body) or as the operation's request.
func decodeRequest(r *http.Request, m method) (ops.Request, error) {
	switch {
	case m.route.URL != nil:
		return m.route.URL(r.PathValue, r.URL.Query())
	case m.route.Body != nil:
		b := m.route.Body()
		return b, decodeBody(r, b, m.route.BodyBytesMax)
	}
	req := m.op.New()
	return req, decodeBody(r, req, m.route.BodyBytesMax)
}
