package httpapi

import (
	"context"
	"net/http"

	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MCPPath is where the gateway serves the MCP tools (mcpserver) over
// streamable HTTP, behind the same API keys as every other path.
const MCPPath = "/mcp"

// mcpKey is the context key of the key authenticated for an MCP request.
type mcpKey struct{}

// newMCPHandler returns the /mcp handler. Each request, in order: gets a
// slot and a deadline (limited), has its API key authenticated here (errors in the
// gateway's own format), then passes to the MCP SDK, stateless (no session
// state kept between requests), with the key in the auth.TokenInfo every
// tool call sees. The tools authorize each call against the key's role and
// customer (mcpserver's README); any valid key may connect.
func (s *Server) newMCPHandler() (http.Handler, error) {
	ms, err := mcpserver.New(mcpserver.Config{Conn: s.nc, RequireKey: true, Logger: s.log})
	if err != nil {
		return nil, err
	}
	// The key picks the tools a client is offered: admin tools only to
	// admin keys (mcpserver.Server.ForKey).
	h := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		k, _ := r.Context().Value(mcpKey{}).(*keys.Key)
		return ms.ForKey(k)
	},
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, MaxRequestBodyBytes: BodyBytesMax})
	withToken := auth.RequireBearerToken(mcpTokenInfo, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)
	return s.limited(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, err := s.authenticate(r.Context(), r)
		if err == nil {
			err = s.limitKey(k)
		}
		if err != nil {
			writeFailure(w, err)
			return
		}
		withToken.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), mcpKey{}, k)))
	})), nil
}

// mcpTokenInfo hands the key authenticated above to the MCP SDK.
func mcpTokenInfo(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
	k, _ := r.Context().Value(mcpKey{}).(*keys.Key)
	if k == nil {
		return nil, auth.ErrInvalidToken
	}
	return &auth.TokenInfo{UserID: k.ID, Extra: map[string]any{mcpserver.KeyExtra: k}}, nil
}
