package projections

import (
	"bytes"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/strictjson"
	"github.com/agentbill/agentbill/ledger"
)

// DecodeRequest turns a request subject and body into a validated command
// bound to the subject's customer. Every failure is an *ledger.Error:
// not_found for an unknown op, invalid_argument for everything else.
func DecodeRequest(subject string, body []byte) (ledger.Command, error) {
	rs, err := parseSubject(subject)
	if err != nil {
		return nil, err
	}
	return rs.decode(body)
}

// requestSubject is what a request subject says: the operation and the
// customer (canonical).
type requestSubject struct {
	op       events.Op
	customer string
}

func parseSubject(subject string) (requestSubject, error) {
	op, tok, admin, err := events.ParseRequestSubject(subject)
	if err != nil {
		return requestSubject{}, ledger.Errorf(ledger.CodeInvalidArgument, "%v", err)
	}
	if ledger.NewCommand(op) == nil || op.IsAdmin() != admin {
		return requestSubject{}, ledger.Errorf(ledger.CodeNotFound, "unknown operation %q", truncate(string(op), 32))
	}
	customer, err := events.ParseToken(tok)
	if err != nil {
		return requestSubject{}, ledger.Errorf(ledger.CodeInvalidArgument, "%v", err)
	}
	return requestSubject{op: op, customer: customer}, nil
}

// decode decodes the body of a request to rs into a validated command.
func (rs requestSubject) decode(body []byte) (ledger.Command, error) {
	return rs.decodeWith(body, true)
}

// decodeWith is decode; with fast unset it skips the fast decoder
// (decode_fast.go), for the tests that compare the two paths.
func (rs requestSubject) decodeWith(body []byte, fast bool) (ledger.Command, error) {
	if len(body) > RequestBytesMax {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument, "request body is %d bytes, more than %d", len(body), RequestBytesMax)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	cmd, ok := ledger.Command(nil), false
	if fast {
		cmd, ok = decodeFast(rs.op, body)
	}
	if !ok {
		cmd = ledger.NewCommand(rs.op)
		if err := decodeStrict(body, cmd); err != nil {
			return nil, err
		}
	}
	if err := ledger.BindCustomer(cmd, rs.customer); err != nil {
		return nil, err
	}
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// decodeStrict decodes one JSON object (strictjson): invalid UTF-8, deep
// nesting, duplicate or unknown fields, trailing data and wrong types are
// invalid_argument. Amounts decode exactly (events.Units).
func decodeStrict(body []byte, v any) error {
	if err := strictjson.Decode(body, v); err != nil {
		return ledger.Errorf(ledger.CodeInvalidArgument, "malformed request: %s", strictjson.Problem(err))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
