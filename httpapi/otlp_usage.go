package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// What a log record must say to be usage (docs/http.md, "OpenTelemetry
// ingest"): Claude Code's api_request event, or the OpenTelemetry GenAI
// semantic conventions' usage attributes.
const (
	claudeCodeEvent     = "api_request"
	claudeCodeEventFull = "claude_code.api_request"

	genAIInputTokens      = "gen_ai.usage.input_tokens"
	genAIOutputTokens     = "gen_ai.usage.output_tokens"
	genAICacheReadTokens  = "gen_ai.usage.cache_read.input_tokens"
	genAICacheWriteTokens = "gen_ai.usage.cache_creation.input_tokens"
	genAIRequestModel     = "gen_ai.request.model"
	genAIResponseModel    = "gen_ai.response.model"
	genAIResponseID       = "gen_ai.response.id"
	genAIProvider         = "gen_ai.provider.name"
	genAISystem           = "gen_ai.system" // the provider's older name

	// The resource attributes that name who is charged
	// (OTEL_RESOURCE_ATTRIBUTES=customer=acme,agent=coder); without
	// agent, the service's name is the agent.
	resourceCustomer = "customer"
	resourceAgent    = "agent"
	resourceService  = "service.name"

	// otlpKindGenAI is the metadata's event for a GenAI semantic
	// conventions record.
	otlpKindGenAI = "gen_ai"
	// otlpSessionID is the session attribute kept in a record's metadata,
	// when at most otlpSessionIDBytesMax (metadata is bounded).
	otlpSessionID         = "session.id"
	otlpSessionIDBytesMax = 128

	// otlpKeyPrefix marks the idempotency keys the ingest makes, so they
	// cannot collide with a key a client chose on POST /v1/events.
	otlpKeyPrefix = "otel:"
)

// otlpWho is the customer and agent a resource names.
type otlpWho struct {
	customer, agent string
	err             error // a resource attribute of the wrong type
}

func whoOf(res otlpAttrs) otlpWho {
	customer, err1 := res.str(resourceCustomer)
	agent, err2 := res.str(resourceAgent)
	if agent == "" && err2 == nil {
		agent, err2 = res.str(resourceService)
	}
	return otlpWho{customer: customer, agent: agent, err: errors.Join(err1, err2)}
}

// otlpRecordOf turns one log record into a record request, or nil when
// the record is not usage (it is then ignored). raw is the record's text
// and scope its scope's: with the resource they identify a record that
// carries no request ID, so a retried export is charged once.
func otlpRecordOf(who otlpWho, resRaw, scope, raw json.RawMessage) (*ledger.RecordRequest, error) {
	var rec otlpLogRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("not an OTLP log record: %v", err)
	}
	attrs := attrsOf(rec.Attributes)
	var (
		u    *events.Usage
		id   string
		kind string
		err  error
	)
	switch {
	case isClaudeCodeRequest(&rec, attrs):
		kind = claudeCodeEventFull
		u, id, err = claudeCodeUsage(attrs)
	case attrs.has(genAIInputTokens, genAIOutputTokens):
		kind = otlpKindGenAI
		u, id, err = genAIUsage(attrs)
	default:
		return nil, nil
	}
	if err == nil {
		err = who.err
	}
	if err == nil && who.agent == "" {
		err = fmt.Errorf("no agent: set the resource attribute %s or %s", resourceAgent, resourceService)
	}
	if err != nil {
		return nil, err
	}
	return &ledger.RecordRequest{
		CustomerID: who.customer, AgentID: who.agent, Usage: u,
		IdempotencyKey: otlpKey(id, resRaw, scope, raw), Metadata: otlpMetadata(kind, attrs),
	}, nil
}

// otlpMetadata is a record's metadata: where it came from, and the
// session (session.id, Claude Code's) when it has one short enough, so
// an audit of the log can tell an ingested record and group a session's.
func otlpMetadata(kind string, attrs otlpAttrs) json.RawMessage {
	m := struct {
		Source    string `json:"source"`
		Event     string `json:"event"`
		SessionID string `json:"session_id,omitempty"`
	}{Source: "otel", Event: kind}
	if sid, err := attrs.str(otlpSessionID); err == nil && len(sid) <= otlpSessionIDBytesMax {
		m.SessionID = sid
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil // strings always encode
	}
	return b
}

// isClaudeCodeRequest: Claude Code names the event in the eventName
// field, the event.name attribute ("api_request") or the body
// ("claude_code.api_request"), depending on its version.
func isClaudeCodeRequest(rec *otlpLogRecord, attrs otlpAttrs) bool {
	name, _ := attrs.str("event.name")
	for _, n := range []string{rec.EventName, name} {
		if n == claudeCodeEvent || n == claudeCodeEventFull {
			return true
		}
	}
	return rec.Body != nil && rec.Body.StringValue != nil && *rec.Body.StringValue == claudeCodeEventFull
}

// claudeCodeUsage reads an api_request event. Its input_tokens exclude the
// cache reads and writes (the Anthropic API's convention); ours count
// every prompt token, so the three are added.
func claudeCodeUsage(a otlpAttrs) (*events.Usage, string, error) {
	model, err := a.str("model")
	id, err2 := a.str("request_id")
	in, err3 := a.tokens("input_tokens")
	out, err4 := a.tokens("output_tokens")
	cr, err5 := a.tokens("cache_read_tokens")
	cw, err6 := a.tokens("cache_creation_tokens")
	if err := errors.Join(err, err2, err3, err4, err5, err6); err != nil {
		return nil, "", err
	}
	u := &events.Usage{Model: model, OutputTokens: out, CacheReadTokens: cr, CacheWriteTokens: cw}
	if in != nil || cr != nil || cw != nil {
		total, err := sumTokens(in, cr, cw)
		if err != nil {
			return nil, "", err
		}
		u.InputTokens = &total
	}
	return u, id, nil
}

// sumTokens adds counts each within events.TokensMax, so the sum cannot
// overflow; a sum past the bound is refused here with the counts named.
func sumTokens(counts ...*int64) (int64, error) {
	var total int64
	for _, c := range counts {
		n := events.Count(c)
		if n > events.TokensMax {
			return 0, fmt.Errorf("a token count of %d exceeds %d", n, events.TokensMax)
		}
		total += n
	}
	if total > events.TokensMax {
		return 0, fmt.Errorf("input, cache read and cache creation tokens add up to %d, more than %d", total, events.TokensMax)
	}
	return total, nil
}

// genAIUsage reads the GenAI semantic conventions, whose input tokens
// include the cached ones (as ours do). The model is the one that
// answered, else the one asked for.
func genAIUsage(a otlpAttrs) (*events.Usage, string, error) {
	model, err := a.str(genAIResponseModel)
	if model == "" && err == nil {
		model, err = a.str(genAIRequestModel)
	}
	provider, err2 := a.str(genAIProvider)
	if provider == "" && err2 == nil {
		provider, err2 = a.str(genAISystem)
	}
	id, err3 := a.str(genAIResponseID)
	in, err4 := a.tokens(genAIInputTokens)
	out, err5 := a.tokens(genAIOutputTokens)
	cr, err6 := a.tokens(genAICacheReadTokens)
	cw, err7 := a.tokens(genAICacheWriteTokens)
	if err := errors.Join(err, err2, err3, err4, err5, err6, err7); err != nil {
		return nil, "", err
	}
	return &events.Usage{Model: model, Provider: provider, InputTokens: in, OutputTokens: out,
		CacheReadTokens: cr, CacheWriteTokens: cw}, id, nil
}

// otlpKey is a record's idempotency key: its request ID, else a hash of
// the record's text with its resource and scope. An exporter retries a
// batch byte for byte, so a retried record has the same key and is
// charged once. An ID too long to be a key is hashed too.
func otlpKey(id string, parts ...json.RawMessage) string {
	if id != "" && len(otlpKeyPrefix)+len(id) <= ledger.IdempotencyKeyBytesMax {
		return otlpKeyPrefix + id
	}
	h := sha256.New()
	if id != "" {
		h.Write([]byte(id))
	} else {
		for _, p := range parts {
			var b bytes.Buffer
			if json.Compact(&b, p) != nil {
				b.Write(p)
			}
			fmt.Fprintf(h, "%d:", b.Len())
			h.Write(b.Bytes())
		}
	}
	return otlpKeyPrefix + "sha256:" + hex.EncodeToString(h.Sum(nil))
}
