package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/agentbill/agentbill/internal/ops"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
)

// OpenTelemetry ingest (docs/http.md, "OpenTelemetry ingest"): an OTLP
// logs receiver that turns the GenAI usage in log records into records,
// so an agent that exports OpenTelemetry logs (Claude Code, or anything
// following the GenAI semantic conventions) is metered without a change
// to its code. Each usage record goes through the record operation of the
// table (internal/ops), so its key and customer rules are every route's.
const (
	// OTLPLogsPath is the OTLP/HTTP logs path under the gateway.
	OTLPLogsPath = "/otel/v1/logs"
	// OTLPBodyBytesMax bounds an export's body: an exporter's batch (512
	// records by default, under 1 KiB each from Claude Code) fits with
	// room to spare.
	OTLPBodyBytesMax = 1 << 20
	// OTLPLogRecordsMax bounds the log records of one export, twice the
	// OpenTelemetry SDKs' default batch (OTEL_BLRP_MAX_EXPORT_BATCH_SIZE,
	// 512). Usage records are recorded one after another within
	// HandlerTimeout, a few milliseconds each.
	OTLPLogRecordsMax = 1024
	// OTLPRejectReasonsMax bounds the reasons a partial success lists.
	OTLPRejectReasonsMax = 3
)

// otlpMediaHint is what a sender of another encoding must change.
const otlpMediaHint = "send OTLP/HTTP JSON: OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=http/json, no compression"

// OTLPLogsResponse is an ExportLogsServiceResponse: empty when every
// record was accepted (usage recorded, or not usage and ignored).
type OTLPLogsResponse struct {
	PartialSuccess *OTLPPartialSuccess `json:"partialSuccess,omitempty"`
}

// OTLPPartialSuccess counts the records refused and says why, for the
// first OTLPRejectReasonsMax of them.
type OTLPPartialSuccess struct {
	// RejectedLogRecords is an int64 as proto3 JSON writes one: a string.
	RejectedLogRecords string `json:"rejectedLogRecords"`
	ErrorMessage       string `json:"errorMessage,omitempty"`
}

// mediaError is an export in protobuf or compressed: 415, with the
// message as an invalid_argument error's.
type mediaError struct{ msg string }

func (e *mediaError) Error() string { return e.msg }

// otlpLogs serves OTLPLogsPath: POST only, in a request slot under
// HandlerTimeout like every route.
func (s *Server) otlpLogs() http.Handler {
	post := s.limited(http.HandlerFunc(s.serveOTLPLogs))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, ledger.Errorf(ledger.CodeInvalidArgument,
				"method %s is not allowed on %s (allowed: POST)", truncate(r.Method, 16), OTLPLogsPath))
			return
		}
		post.ServeHTTP(w, r)
	})
}

func (s *Server) serveOTLPLogs(w http.ResponseWriter, r *http.Request) {
	reply, err := s.ingestOTLP(r.Context(), r)
	var media *mediaError
	switch {
	case errors.As(err, &media):
		writeJSON(w, http.StatusUnsupportedMediaType, ledger.ErrorReply{
			Error: ledger.Errorf(ledger.CodeInvalidArgument, "%s", media.msg)})
	case err != nil:
		e := toError(err)
		if e.Code == ledger.CodeInternal || e.Code == ledger.CodeUnavailable {
			s.log.Warn("otlp export failed", "code", e.Code, "err", err)
		}
		writeFailure(w, err) // 429 with Retry-After for a key past its rate limit
	default:
		writeJSON(w, http.StatusOK, reply)
	}
}

// ingestOTLP authenticates the key (it must be allowed to spend), reads
// the export and records its usage.
func (s *Server) ingestOTLP(ctx context.Context, r *http.Request) (*OTLPLogsResponse, error) {
	k, err := s.authenticate(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := s.limitKey(k); err != nil {
		return nil, err
	}
	if err := k.AuthorizeAction(keys.ActionSpend); err != nil {
		return nil, err
	}
	req, err := readOTLPLogs(r)
	if err != nil {
		return nil, err
	}
	return s.recordOTLP(ctx, k, req)
}

// checkOTLPMedia refuses protobuf and compressed exports with 415, and
// any other Content-Type but JSON.
func checkOTLPMedia(r *http.Request) error {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return &mediaError{fmt.Sprintf("Content-Encoding %q is not supported; %s", truncate(enc, 32), otlpMediaHint)}
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return &mediaError{fmt.Sprintf("Content-Type %q is not supported; %s", truncate(ct, 64), otlpMediaHint)}
	}
	return nil
}

// readOTLPLogs reads and decodes an export within OTLPBodyBytesMax and
// OTLPLogRecordsMax.
func readOTLPLogs(r *http.Request) (*otlpLogsRequest, error) {
	if err := checkOTLPMedia(r); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, OTLPBodyBytesMax))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, invalid("the export is larger than %d bytes; lower OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", OTLPBodyBytesMax)
		}
		return nil, invalid("cannot read the request body: %v", err)
	}
	var req otlpLogsRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("request body is empty; send an OTLP ExportLogsServiceRequest in JSON")
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, invalid("not an OTLP/HTTP JSON ExportLogsServiceRequest: %v", err)
	}
	n := 0
	for _, rl := range req.ResourceLogs {
		for _, sl := range rl.ScopeLogs {
			n += len(sl.LogRecords)
		}
	}
	if n > OTLPLogRecordsMax {
		return nil, invalid("the export has %d log records, more than %d; lower OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", n, OTLPLogRecordsMax)
	}
	return &req, nil
}

// otlpTally counts the records refused and keeps the first reasons.
type otlpTally struct {
	usage, rejected int
	reasons         []string
}

func (t *otlpTally) reject(where string, why string) {
	t.rejected++
	if len(t.reasons) < OTLPRejectReasonsMax {
		t.reasons = append(t.reasons, where+": "+why)
	}
}

func (t *otlpTally) reply() *OTLPLogsResponse {
	if t.rejected == 0 {
		return &OTLPLogsResponse{}
	}
	msg := strings.Join(t.reasons, "; ")
	if t.rejected > len(t.reasons) {
		msg += fmt.Sprintf("; and %d more", t.rejected-len(t.reasons))
	}
	return &OTLPLogsResponse{PartialSuccess: &OTLPPartialSuccess{
		RejectedLogRecords: strconv.Itoa(t.rejected), ErrorMessage: msg}}
}

// recordOTLP records the usage of every log record, in order. A record
// the ledger refuses is rejected and the rest go on; when the ledger is
// unavailable the whole export is (503), and the exporter's retry of it
// charges nothing twice, since each record has its idempotency key.
func (s *Server) recordOTLP(ctx context.Context, k *keys.Key, req *otlpLogsRequest) (*OTLPLogsResponse, error) {
	var t otlpTally
	for i, rl := range req.ResourceLogs {
		who := resourceWho(rl.Resource)
		for j, sl := range rl.ScopeLogs {
			for l, raw := range sl.LogRecords {
				where := fmt.Sprintf("resourceLogs[%d].scopeLogs[%d].logRecords[%d]", i, j, l)
				rr, err := otlpRecordOf(who, rl.Resource, sl.Scope, raw)
				if err != nil {
					t.reject(where, err.Error())
					continue
				}
				if rr == nil {
					continue // not usage: accepted and ignored
				}
				t.usage++
				if err := s.recordOne(ctx, k, rr); err != nil {
					e := toError(err)
					switch e.Code {
					case ledger.CodeUnavailable, ledger.CodeInternal, ledger.CodeUnauthenticated:
						return nil, err
					}
					t.reject(where, e.Message)
				}
			}
		}
	}
	if t.rejected > 0 {
		s.log.Info("otlp export partly rejected", "usage", t.usage, "rejected", t.rejected, "first", t.reasons[0])
	}
	return t.reply(), nil
}

// resourceWho reads the customer and agent of a resource.
func resourceWho(raw json.RawMessage) otlpWho {
	var res otlpResource
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &res); err != nil {
			return otlpWho{err: fmt.Errorf("resource: not OTLP JSON: %v", err)}
		}
	}
	return whoOf(attrsOf(res.Attributes))
}

// recordOne sends one record through the table's record operation. The
// customer is the resource's, else the key's; there is no default
// customer here, since telemetry that names none was not meant for one.
func (s *Server) recordOne(ctx context.Context, k *keys.Key, rr *ledger.RecordRequest) error {
	if rr.CustomerID == "" && k.CustomerID == "" {
		return invalid("no customer: set the resource attribute %s (OTEL_RESOURCE_ATTRIBUTES=%s=...) or use a key bound to one",
			resourceCustomer, resourceCustomer)
	}
	_, err := s.record.Call(ctx, s.backend, k, "", rr)
	return err
}

// recordOp is the table's record operation.
func recordOp() (*ops.Op, error) {
	for _, op := range ops.Table() {
		if op.Name == "record" {
			return op, nil
		}
	}
	return nil, errors.New("httpapi: the operation table has no record operation")
}
