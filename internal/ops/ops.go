// Package ops declares, once, every operation the adapters offer (the HTTP
// gateway, package httpapi, and the MCP server, package mcpserver): its
// name, the request it decodes, the role it needs, the call that performs
// it, and how each transport offers it (HTTP method and path, MCP tool name,
// description and schema). The adapters generate their routes and tools
// from Table, so adding an operation is one entry, and the rules every
// transport shares (which customer a call is for, whether its key may act
// on it) are written here once.
//
// Nothing here decides about money or checks a request's fields: the
// ledger does, where it validates (ledger.Command's Validate), for every
// way in alike. An adapter decodes strictly and relays.
package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds on the adapters' calls to the writer.
const (
	// AttemptTimeout and Attempts bound an adapter's NATS calls (per
	// attempt, and attempts per call, retried with the same idempotency
	// key); the adapter's own timeout bounds them all together. The
	// client's attempts span 5 to 10 s when no writer answers, so a
	// failover to the standby (about 3 s) costs a caller latency, not an
	// error.
	AttemptTimeout = 5 * time.Second
	Attempts       = client.AttemptsMax
)

// Request is an operation's decoded request: a ledger.Command, or the
// arguments of a read of the log.
type Request interface {
	// Customer is the customer_id the request names, "" for none.
	Customer() string
}

// Body is a transport's own form of an operation's request, under other
// field names (the HTTP gateway's REST names); it converts to the request.
type Body interface {
	Customer() string
	// Request returns the operation's request, or an invalid_argument
	// error for a body whose shape says nothing (no agent, say).
	Request() (Request, error)
}

// Backend is what operations run against.
type Backend struct {
	Client *client.Client // requests to the writer
	Scans  *audit.Scanner // reads of the log
}

// NewBackend returns the backend of an adapter on nc, its calls bounded by
// AttemptTimeout and Attempts; opts add to the client's (the MCP server's
// fail policy, client.WithOnUnavailable).
func NewBackend(nc *nats.Conn, opts ...client.Option) (Backend, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return Backend{}, err
	}
	return Backend{
		Client: client.New(nc, append([]client.Option{client.WithTimeout(AttemptTimeout), client.WithAttempts(Attempts)}, opts...)...),
		Scans:  audit.NewScanner(js),
	}, nil
}

// RunFunc performs one call for customer cid, already resolved and
// authorized ("" only for an operation's AllCustomers call).
type RunFunc func(ctx context.Context, b Backend, cid string, req Request) (reply any, err error)

// Op is one operation.
type Op struct {
	Name   string      // the operation, for logs
	Action keys.Action // what a key must be allowed on the customer
	// AllCustomers, if set, lets a call that names no customer, with a key
	// bound to none (or no key), act on every customer.
	AllCustomers *AllCustomers
	New          func() Request // an empty request to decode into
	Run          RunFunc
	HTTP         []Route // nil: not on the HTTP gateway
	Tool         *Tool   // nil: not an MCP tool
}

// AllCustomers is what a call on every customer needs.
type AllCustomers struct {
	Action keys.Action
	Hint   string // appended to the refusal: how to ask for less
}

// Route is one HTTP method and path of an operation. A route reads its
// request from the JSON body (the operation's request, or Body), or, with
// URL, from the path and query.
type Route struct {
	Method, Path string
	Body         func() Body                                                   // nil: the body is the request itself
	URL          func(path func(string) string, q url.Values) (Request, error) // set for a route without a body
	View         func(reply any) any                                           // nil: the reply as is
	// BodyBytesMax is the largest body the route reads (0: the gateway's
	// default); a price list is larger than any request.
	BodyBytesMax int
}

// Tool is an operation as an MCP tool. Its arguments are the operation's
// request, decoded exactly (mcpserver).
type Tool struct {
	Name, Title, Description string
	Schema                   json.RawMessage // the input JSON Schema
	ReadOnly, Idempotent     bool
	// Summary is the paragraph the model reads, from the request and reply.
	Summary func(req Request, reply any) string
}

// Call performs one call of op with the key k (nil for none: MCP over
// stdio), from in, the request or Body a transport decoded. A call that
// names no customer is for the key's own, else for def ("" : none, and
// customer_id is required).
func (op *Op) Call(ctx context.Context, b Backend, k *keys.Key, def string, in Request) (any, error) {
	if c, ok := in.(checker); ok {
		if err := c.check(); err != nil {
			return nil, err
		}
	}
	cid, err := op.customer(in.Customer(), k, def)
	if err != nil {
		return nil, err
	}
	req := in
	if body, ok := in.(Body); ok {
		if req, err = body.Request(); err != nil {
			return nil, err
		}
	}
	return op.Run(ctx, b, cid, req)
}

// checker is a request of a read with arguments that are checked before
// the customer is resolved (they are no ledger request's: the ledger
// checks those).
type checker interface{ check() error }

// customer resolves the customer of a call of op.
func (op *Op) customer(named string, k *keys.Key, def string) (string, error) {
	if all := op.AllCustomers; all != nil && named == "" && (k == nil || k.CustomerID == "") {
		if k != nil {
			if err := k.AuthorizeAction(all.Action); err != nil {
				return "", fmt.Errorf("%w%s", err, all.Hint)
			}
		}
		return "", nil
	}
	return Customer(named, k, op.Action, def)
}

// Customer resolves the customer a call is for: the one it names, else the
// key's own, else def ("" : the call must name one). It checks the ID and,
// with a key, that the key may perform action on that customer. k is nil
// for a call without a key (MCP over stdio: the NATS credentials are the
// boundary).
func Customer(named string, k *keys.Key, action keys.Action, def string) (string, error) {
	cid := named
	if cid == "" && k != nil {
		cid = k.CustomerID
	}
	if cid == "" {
		cid = def
	}
	if cid == "" {
		return "", invalid("customer_id is required")
	}
	if err := events.ValidateCustomerID(cid); err != nil {
		return "", invalid("%v", err)
	}
	if k != nil {
		if err := k.Authorize(action, cid); err != nil {
			return "", err
		}
	}
	return cid, nil
}

// send is the RunFunc of a ledger request R: it binds the request to the
// resolved customer and makes the client call.
func send[R any, PR interface {
	*R
	ledger.Command
}, Out any](call func(*client.Client, context.Context, string, R) (Out, error)) RunFunc {
	return func(ctx context.Context, b Backend, cid string, req Request) (any, error) {
		cmd, ok := req.(PR)
		if !ok {
			return nil, fmt.Errorf("ops: request %T, want %T", req, PR(nil))
		}
		if err := ledger.BindCustomer(cmd, cid); err != nil {
			return nil, err
		}
		return call(b.Client, ctx, cid, *cmd)
	}
}

// newOf returns an empty *R.
func newOf[R any, PR interface {
	*R
	Request
}]() Request {
	return PR(new(R))
}

func invalid(format string, args ...any) *ledger.Error {
	return ledger.Errorf(ledger.CodeInvalidArgument, format, args...)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
