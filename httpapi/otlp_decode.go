package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The OTLP/HTTP JSON form of an ExportLogsServiceRequest (the
// opentelemetry-proto JSON mapping, lowerCamelCase field names). Only the
// fields the ingest reads are declared; every other field, present or
// future, is ignored, as OTLP receivers must. Attribute values stay raw
// until read, so a token count is decoded from its text, never through
// a float64.
type (
	otlpLogsRequest struct {
		ResourceLogs []otlpResourceLogs `json:"resourceLogs"`
	}
	otlpResourceLogs struct {
		// Resource stays raw, for the same reason as LogRecords.
		Resource  json.RawMessage `json:"resource"`
		ScopeLogs []otlpScopeLogs `json:"scopeLogs"`
	}
	otlpResource struct {
		Attributes []otlpKeyValue `json:"attributes"`
	}
	otlpScopeLogs struct {
		Scope json.RawMessage `json:"scope"`
		// LogRecords stay raw: a record without an ID of its own is
		// identified by a hash of its text (otlpRecordKey).
		LogRecords []json.RawMessage `json:"logRecords"`
	}
	otlpLogRecord struct {
		EventName  string         `json:"eventName"`
		Body       *otlpAnyValue  `json:"body"`
		Attributes []otlpKeyValue `json:"attributes"`
	}
	otlpKeyValue struct {
		Key   string       `json:"key"`
		Value otlpAnyValue `json:"value"`
	}
	// otlpAnyValue is an AnyValue; arrays, key-value lists and bytes are
	// never usage, so they are not declared (and read as no value).
	otlpAnyValue struct {
		StringValue *string         `json:"stringValue"`
		IntValue    json.RawMessage `json:"intValue"`
		DoubleValue json.RawMessage `json:"doubleValue"`
	}
)

// otlpAttrs is a list of attributes by key; of a repeated key, the last.
type otlpAttrs map[string]otlpAnyValue

func attrsOf(kvs []otlpKeyValue) otlpAttrs {
	m := make(otlpAttrs, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// str returns the string value of key, "" when it is absent; a value of
// another type is an error.
func (a otlpAttrs) str(key string) (string, error) {
	v, ok := a[key]
	if !ok {
		return "", nil
	}
	if v.StringValue == nil {
		return "", fmt.Errorf("attribute %s: want a stringValue", key)
	}
	return *v.StringValue, nil
}

// has reports whether any of keys is present.
func (a otlpAttrs) has(keys ...string) bool {
	for _, k := range keys {
		if _, ok := a[k]; ok {
			return true
		}
	}
	return false
}

// tokens returns the token count of key, nil when it is absent. The count
// may be an intValue (a JSON string or number, as proto3 JSON writes an
// int64), a doubleValue that is a whole number written without an
// exponent ("1200" or "1200.0"), or a stringValue of decimal digits (as
// Claude Code sends its counts). Anything else is an error: a fractional
// or negative count, an exponent, NaN, or a number past int64.
func (a otlpAttrs) tokens(key string) (*int64, error) {
	v, ok := a[key]
	if !ok {
		return nil, nil
	}
	var text string
	switch {
	case v.IntValue != nil:
		text = unquoteJSON(v.IntValue)
	case v.DoubleValue != nil:
		text = wholeDouble(unquoteJSON(v.DoubleValue))
	case v.StringValue != nil:
		text = *v.StringValue
	default:
		return nil, fmt.Errorf("attribute %s: want a whole number of tokens", key)
	}
	if text == "" || strings.TrimLeft(text, "0123456789") != "" {
		return nil, fmt.Errorf("attribute %s: %q is not a whole number of tokens", key, truncate(text, 32))
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("attribute %s: %q is out of range", key, truncate(text, 32))
	}
	return &n, nil
}

// unquoteJSON returns the text of a JSON number, or of a JSON string
// without its quotes (an int64 or a special double in proto3 JSON).
func unquoteJSON(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// wholeDouble returns a double's integer digits when its fraction is all
// zeros ("1200.0" -> "1200"), else the text unchanged (which then fails
// the digits check).
func wholeDouble(text string) string {
	whole, frac, ok := strings.Cut(text, ".")
	if ok && frac != "" && strings.Trim(frac, "0") == "" {
		return whole
	}
	return text
}
