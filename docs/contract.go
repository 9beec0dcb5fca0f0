// Package docs holds AgentBill's machine-readable contracts, embedded so
// the binary serves the very document the tests check: openapi.json (the
// HTTP gateway, served at GET /v1/openapi.json) beside asyncapi.yaml (the
// NATS interface). contracts/ tests both against the real binary.
package docs

import _ "embed"

// OpenAPI is docs/openapi.json, the OpenAPI 3.1 document of the gateway.
//
//go:embed openapi.json
var OpenAPI []byte
