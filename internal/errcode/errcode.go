// Package errcode classifies any error into the *ledger.Error a client
// sees. Every transport that talks to agents (HTTP gateway, MCP) calls
// Classify, then maps the code to its own form (an HTTP status, an MCP tool
// error) in its own single table; the classification itself exists once,
// so the transports cannot drift apart.
package errcode

import (
	"context"
	"errors"

	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
)

// Classify returns err's *ledger.Error if it carries one. Errors without a
// code are classified here: key errors by kind, a missing answer from NATS
// as unavailable (retry), anything else as internal, with a message that
// does not leak details (callers log those).
func Classify(err error) *ledger.Error {
	var le *ledger.Error
	switch {
	case errors.As(err, &le):
		return le
	case errors.Is(err, keys.ErrUnauthenticated):
		return ledger.Errorf(ledger.CodeUnauthenticated, "%v", err)
	case errors.Is(err, keys.ErrPermissionDenied):
		return ledger.Errorf(ledger.CodePermissionDenied, "%v", err)
	case errors.Is(err, keys.ErrInvalid):
		return ledger.Errorf(ledger.CodeInvalidArgument, "%v", err)
	case errors.Is(err, keys.ErrUnavailable):
		return ledger.Errorf(ledger.CodeUnavailable, "the key store did not answer; retry")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting):
		return ledger.Errorf(ledger.CodeUnavailable, "AgentBill did not answer in time; retry")
	}
	return ledger.Errorf(ledger.CodeInternal, "internal error")
}
