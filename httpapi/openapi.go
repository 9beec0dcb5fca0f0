package httpapi

import (
	"net/http"
	"strconv"

	"github.com/agentbill/agentbill/docs"
)

// OpenAPIPath serves the gateway's OpenAPI document (docs/openapi.json,
// embedded in the binary). It needs no key: it describes the API, it
// holds no data.
const OpenAPIPath = "/v1/openapi.json"

// openAPI answers GET and HEAD with the document; any other method 400
// with Allow, as the probes do.
func openAPI(w http.ResponseWriter, r *http.Request) {
	if !probeMethod(w, r) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(docs.OpenAPI)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(docs.OpenAPI)
	}
}
