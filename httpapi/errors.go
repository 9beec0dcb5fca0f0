package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/agentbill/agentbill/internal/errcode"
	"github.com/agentbill/agentbill/ledger"
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
	ledger.CodeRateLimited:      http.StatusTooManyRequests,
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

// toError turns any error into the *ledger.Error the client sees (see
// errcode.Classify, shared with the MCP transport).
func toError(err error) *ledger.Error { return errcode.Classify(err) }

// WriteError writes err as the gateway does: {"error": {"code", "message"}}
// with its code's status. Other handlers on the gateway (the dashboard)
// use it so every error has one shape.
func WriteError(w http.ResponseWriter, err error) { writeError(w, toError(err)) }

// WriteJSON writes v as a JSON reply with status, as the gateway does.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

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
