package ledger

import (
	"errors"
	"fmt"
)

// Code classifies an error for every transport (NATS reply, HTTP status,
// CLI exit code). The set is docs/PROTOCOL.md's ("Errors").
type Code string

// Error codes.
const (
	CodeInvalidArgument  Code = "invalid_argument"
	CodeNotFound         Code = "not_found"
	CodeConflict         Code = "conflict"
	CodeUnavailable      Code = "unavailable"
	CodePermissionDenied Code = "permission_denied"
	CodeUnauthenticated  Code = "unauthenticated"
	CodeInternal         Code = "internal"
	// CodeRateLimited: HTTP only, an API key's requests came faster than
	// the gateway's per-key rate limit (a customer's preflights past its
	// rate are a refusal, reason rate_limited, not an error).
	CodeRateLimited Code = "rate_limited"
)

// Error is the one application error type.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf returns an *Error with the given code.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err: its own if it is (or wraps) an *Error,
// CodeInternal otherwise.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorReply is the body of every error reply: {"error": {...}}.
type ErrorReply struct {
	Error *Error `json:"error"`
}
