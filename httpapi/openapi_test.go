package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agentbill/agentbill/docs"
)

// TestOpenAPI: GET serves the embedded document byte for byte, as JSON,
// with no key; HEAD its headers only; another method is 400 with Allow.
// contracts/test checks the document itself against the running gateway.
func TestOpenAPI(t *testing.T) {
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(docs.OpenAPI, &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("embedded document: got openapi %q, err %v; want 3.1.0", doc.OpenAPI, err)
	}
	if _, ok := doc.Paths[OpenAPIPath]; !ok {
		t.Fatalf("the document does not describe %s itself", OpenAPIPath)
	}
	for _, tc := range []struct {
		method     string
		wantStatus int
		wantBody   []byte
		wantAllow  string
	}{
		{http.MethodGet, http.StatusOK, docs.OpenAPI, ""},
		{http.MethodHead, http.StatusOK, nil, ""},
		{http.MethodPost, http.StatusBadRequest, nil, "GET, HEAD"},
	} {
		rec := httptest.NewRecorder()
		openAPI(rec, httptest.NewRequest(tc.method, OpenAPIPath, nil))
		if got := rec.Code; got != tc.wantStatus {
			t.Errorf("%s: got status %d, want %d", tc.method, got, tc.wantStatus)
		}
		if got := rec.Header().Get("Allow"); got != tc.wantAllow {
			t.Errorf("%s: got Allow %q, want %q", tc.method, got, tc.wantAllow)
		}
		if tc.wantBody != nil && !bytes.Equal(rec.Body.Bytes(), tc.wantBody) {
			t.Errorf("%s: the body is not the embedded document (%d bytes, want %d)", tc.method, rec.Body.Len(), len(tc.wantBody))
		}
		if tc.method == http.MethodHead && rec.Body.Len() != 0 {
			t.Errorf("HEAD: got a %d-byte body, want none", rec.Body.Len())
		}
	}
}
