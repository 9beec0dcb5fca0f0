package httpapi

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/agentbill/agentbill/internal/strictjson"
	"github.com/agentbill/agentbill/ledger"
)

// decodeBody reads a JSON request body strictly: Content-Type must be
// application/json, the body at most limit (0: BodyBytesMax), one JSON object with
// no unknown fields and nothing after it. Amounts decode exactly
// (events.Units reads the number's text, never a float64). Every failure
// is invalid_argument, before anything is sent to the writer.
func decodeBody(r *http.Request, v any, limit int) error {
	if limit <= 0 {
		limit = BodyBytesMax
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return invalid("Content-Type must be application/json, not %q", truncate(ct, 64))
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, int64(limit)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return invalid("request body is larger than %d bytes", limit)
		}
		return invalid("cannot read the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("request body is empty; send a JSON object")
	}
	if err := strictjson.Decode(body, v); err != nil {
		return invalid("malformed JSON: %s", strictjson.Problem(err))
	}
	return nil
}

func invalid(format string, args ...any) *ledger.Error {
	return ledger.Errorf(ledger.CodeInvalidArgument, format, args...)
}
