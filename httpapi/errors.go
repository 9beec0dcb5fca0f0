package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
)

// statusOf is the one table from error codes to HTTP statuses. Every
// error the gateway writes goes through it; a code missing here is a 500.
var statusOf = map[ledger.Code]int{
	ledger.CodeInvalidArgument:  http.StatusBadRequest,
	ledger.CodeUnauthenticated:  http.StatusUnauthorized,
	ledger.CodePermissionDenied: http.StatusForbidden,
	ledger.CodeNotFound:         http.StatusNotFound,
	ledger.CodeConflict:         http.StatusConflict,
	ledger.CodeUnavailable:      http.StatusServiceUnavailable,
	ledger.CodeInternal:         http.StatusInternalServerError,
}

// Status returns the HTTP status for an error code.
func Status(code ledger.Code) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// RetryAfterSeconds is sent with every 503: when a client may try again.
const RetryAfterSeconds = 1

// toError turns any error into the *ledger.Error the client sees. Errors
// that carry no code of their own are classified here: a missing answer
// from NATS is unavailable (retry), anything else internal, with a message
// that does not leak details (those are logged).
func toError(err error) *ledger.Error {
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

// writeError writes {"error": {"code", "message"}} with the code's status.
func writeError(w http.ResponseWriter, e *ledger.Error) {
	status := Status(e.Code)
	h := w.Header()
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="agentbill"`)
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	}
	writeJSON(w, status, ledger.ErrorReply{Error: e})
}

// writeJSON writes v as the response body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"cannot encode the reply"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
