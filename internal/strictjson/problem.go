package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ProblemBytesMax bounds the error text Problem passes on: enough for any
// message of this package or encoding/json with a field name, short
// enough that a hostile body cannot make the reply large.
const ProblemBytesMax = 200

// Problem says what is wrong with a body Decode refused, for the sender: a
// wrong type names its field, a value that is not an object says so, and
// anything else is the error's text, at most ProblemBytesMax bytes. It
// leaves out ErrMalformed's own words, so a transport can put its context
// first ("malformed JSON: ...", "bad arguments: ...") without saying
// "malformed JSON" twice.
func Problem(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		if ute.Field == "" {
			return fmt.Sprintf("want a JSON object (got %s)", ute.Value)
		}
		return fmt.Sprintf("field %q has the wrong type (%s)", ute.Field, ute.Value)
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		// encoding/json passes time.Time's error on without the field.
		return fmt.Sprintf("a time is not in RFC 3339 form, like 2026-04-01T00:00:00Z (got %q)", truncate([]byte(pe.Value)))
	}
	msg := err.Error()
	if errors.Is(err, ErrMalformed) {
		msg = strings.TrimPrefix(msg, ErrMalformed.Error()+": ")
	}
	if len(msg) > ProblemBytesMax {
		return msg[:ProblemBytesMax] + "..."
	}
	return msg
}
