package mcpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/errcode"
	"github.com/agentbill/agentbill/internal/strictjson"
	"github.com/agentbill/agentbill/ledger"
)

// ArgsBytesMax bounds one tool call's arguments; it matches the writer's
// bound on a NATS request (projections.RequestBytesMax).
const ArgsBytesMax = 64 * 1024

// decodeArgs reads a tool's arguments strictly: one JSON object, no
// unknown fields, nothing after it, amounts exact (events.Units reads the
// number's text or a string, never a float64). Every failure is
// invalid_argument with a message naming the problem.
func decodeArgs(args json.RawMessage, v any) error {
	if len(args) > ArgsBytesMax {
		return invalid("arguments are larger than %d bytes", ArgsBytesMax)
	}
	if len(bytes.TrimSpace(args)) == 0 || bytes.Equal(bytes.TrimSpace(args), []byte("null")) {
		args = json.RawMessage("{}")
	}
	if err := strictjson.Decode(args, v); err != nil {
		if errors.Is(err, events.ErrInvalidUnits) {
			return invalid("bad arguments: %s", badAmount(args, err))
		}
		return invalid("bad arguments: %s", strictjson.Problem(err))
	}
	return nil
}

// amountFields are the arguments that are amounts.
var amountFields = []string{"estimated_units", "units", "task_ceiling", "ceiling", "min_units"}

// badAmount names the amount that failed to decode: encoding/json does
// not say which field a custom decoder rejected.
func badAmount(args json.RawMessage, err error) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(args, &fields) == nil {
		for _, name := range amountFields {
			raw, ok := fields[name]
			if !ok {
				continue
			}
			var u events.Units
			if ferr := u.UnmarshalJSON(raw); ferr != nil {
				return fmt.Sprintf("%s: %v (want a number of units, like 12.5 or \"12.5\")", name, ferr)
			}
		}
	}
	return strictjson.Problem(err)
}

func invalid(format string, args ...any) *ledger.Error {
	return ledger.Errorf(ledger.CodeInvalidArgument, format, args...)
}

// toError turns any error into the *ledger.Error the client sees (see
// errcode.Classify, shared with the HTTP gateway).
func toError(err error) *ledger.Error { return errcode.Classify(err) }
