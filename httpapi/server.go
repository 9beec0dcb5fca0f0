// Package httpapi is the HTTP gateway of `agentbill serve --http`: the
// AgentBill REST paths of docs/PROTOCOL.md, for agents and SDKs that do not
// speak NATS, and the MCP tools at /mcp. It is a thin adapter. Its /v1/
// routes are generated from the operation table (internal/ops). It
// authenticates the API key (keys.Store), checks what the key's role and
// customer allow (keys.Key.Authorize), decodes the body exactly (amounts as
// events.Units, never float64), and sends the same NATS request any agent
// would through client.Client; the ledger validates it. Every decision is
// the single writer's; the gateway decides nothing about money.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/ops"
	"github.com/agentbill/agentbill/internal/ratelimit"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
)

// Bounds on every request. See README.md.
const (
	// BodyBytesMax bounds a request body; it matches the writer's bound on
	// a NATS request (projections.RequestBytesMax).
	BodyBytesMax = 64 * 1024
	// HeaderBytesMax bounds a request's headers.
	HeaderBytesMax = 16 * 1024
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout bound
	// each connection's phases (slow clients cannot hold a connection).
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 2 * time.Minute
	// HandlerTimeout bounds the work of one request: key lookup and the
	// NATS request with its retries. Past it the answer is unavailable.
	HandlerTimeout = 15 * time.Second
	// AttemptTimeout and Attempts bound the gateway's NATS calls to the
	// writer (ops.AttemptTimeout, ops.Attempts); HandlerTimeout bounds
	// them all together, so a failover to the standby (about 3 s) costs
	// an HTTP caller latency, not a 503.
	AttemptTimeout = ops.AttemptTimeout
	Attempts       = ops.Attempts
	// ConcurrentRequestsMax bounds requests being handled at once; past it
	// the answer is unavailable at once, and the client retries.
	ConcurrentRequestsMax = 1024
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout = 10 * time.Second
	// DefaultCustomer is the customer of a request that names none, when
	// its key is not bound to one (docs/PROTOCOL.md). MCP has none: a tool
	// call must name its customer unless its key is bound to one.
	DefaultCustomer = "default"
)

// Authenticator returns the key record of a valid, unrevoked API key.
// keys.Store implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (*keys.Key, error)
}

// Config configures a Server.
type Config struct {
	Conn   *nats.Conn    // the gateway's own connection to NATS
	Keys   Authenticator // the API keys
	Logger *slog.Logger  // slog.Default() if nil
	// Role reports the writer's role for /readyz (projections.Writer.Role).
	// Nil: /readyz answers 503, since nothing says a writer is serving.
	Role func() string
	// Metrics serves /metrics (package metrics); nil for none.
	Metrics http.Handler
	// Dashboard serves "/" and everything under DashboardPrefix (package
	// dashboard); nil for none.
	Dashboard http.Handler
	// KeyRateLimit is each API key's request rate (ratelimit.go); the
	// zero value limits nothing.
	KeyRateLimit events.RateLimit
}

// DashboardPrefix is the path under which the dashboard serves its assets,
// its data and its live feed; the page itself is "/".
const DashboardPrefix = "/ui/"

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Conn == nil {
		errs = append(errs, errors.New("httpapi: Conn is required"))
	}
	if c.Keys == nil {
		errs = append(errs, errors.New("httpapi: Keys is required"))
	}
	return errors.Join(errs...)
}

// Server is the gateway: an http.Handler.
type Server struct {
	nc      *nats.Conn
	backend ops.Backend // the writer's client and the log's scans
	keys    Authenticator
	log     *slog.Logger
	mux     *http.ServeMux
	slots   chan struct{} // ConcurrentRequestsMax
	// keyLimits holds each API key's bucket (Config.KeyRateLimit).
	keyLimits *ratelimit.Limiter
	scans     *audit.Scanner // backend.Scans: the events endpoint's scans of the log
	mcp       http.Handler   // MCPPath
	record    *ops.Op        // the table's record operation, for OTLPLogsPath
	cfg       Config         // Role, Metrics and Dashboard
}

// New returns a gateway.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		nc:        cfg.Conn,
		keys:      cfg.Keys,
		log:       cfg.Logger,
		mux:       http.NewServeMux(),
		slots:     make(chan struct{}, ConcurrentRequestsMax),
		cfg:       cfg,
		keyLimits: ratelimit.New(cfg.KeyRateLimit, RateLimitKeysMax),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	var err error
	if s.backend, err = ops.NewBackend(cfg.Conn); err != nil {
		return nil, err
	}
	s.scans = s.backend.Scans
	if s.record, err = recordOp(); err != nil {
		return nil, err
	}
	if s.mcp, err = s.newMCPHandler(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// HTTPServer returns an *http.Server for the gateway on addr, with every
// timeout and size bound set.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    HeaderBytesMax,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// routes registers the API (generated from the operation table, api.go),
// then every path that is not an operation: MCP, OpenTelemetry ingest
// (otlp.go), the probes, metrics and
// the dashboard, and the 404 for everything else.
func (s *Server) routes() {
	s.apiRoutes()
	s.mux.Handle(MCPPath, s.mcp)
	s.mux.Handle(OTLPLogsPath, s.otlpLogs())
	s.mux.HandleFunc(OpenAPIPath, openAPI)
	s.mux.HandleFunc("/healthz", s.healthz)
	s.mux.HandleFunc("/readyz", s.readyz)
	if s.cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", s.cfg.Metrics)
	}
	if s.cfg.Dashboard != nil {
		s.mux.Handle("GET /{$}", s.cfg.Dashboard)
		s.mux.Handle(DashboardPrefix, s.cfg.Dashboard)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, ledger.Errorf(ledger.CodeNotFound, "no such path: %s", truncate(r.URL.Path, 128)))
	})
}

// handle registers a path. Every request on it is, in order: matched to
// a method, given a slot and a deadline (limited), authenticated, checked
// against the role, then decoded and performed (call), which checks the
// customer.
func (s *Server) handle(path string, methods map[string]method) {
	allowed := make([]string, 0, len(methods))
	byMethod := make(map[string]http.Handler, len(methods))
	for name, m := range methods {
		allowed = append(allowed, name)
		byMethod[name] = s.limited(s.endpoint(path, m))
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		h, ok := byMethod[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			writeError(w, ledger.Errorf(ledger.CodeInvalidArgument,
				"method %s is not allowed on %s (allowed: %s)", truncate(r.Method, 16), path, allow))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// limited runs next in one of the gateway's request slots, under
// HandlerTimeout. With every slot taken it answers unavailable (503) at
// once rather than queue: the bound on requests in progress is the
// bound on the writer's load from this gateway.
func (s *Server) limited(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.slots <- struct{}{}:
			defer func() { <-s.slots }()
		default:
			writeError(w, ledger.Errorf(ledger.CodeUnavailable, "too many requests in progress; retry"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), HandlerTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// endpoint serves one method of path: the reply with 200, or the error,
// logged when it is the gateway's or the writer's fault.
func (s *Server) endpoint(path string, m method) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reply, err := s.serve(r.Context(), r, m)
		if err != nil {
			e := toError(err)
			if e.Code == ledger.CodeInternal || e.Code == ledger.CodeUnavailable {
				s.log.Warn("http request failed", "method", r.Method, "path", path, "code", e.Code, "err", err)
			}
			writeFailure(w, err)
			return
		}
		writeJSON(w, http.StatusOK, reply)
	})
}

func (s *Server) serve(ctx context.Context, r *http.Request, m method) (any, error) {
	k, err := s.authenticate(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := s.limitKey(k); err != nil {
		return nil, err
	}
	if err := k.AuthorizeAction(m.op.Action); err != nil {
		return nil, err
	}
	return s.call(ctx, r, k, m)
}

// authenticate reads "Authorization: Bearer agb_..." and looks the key up.
// No header, a malformed one, an unknown or revoked key: unauthenticated.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (*keys.Key, error) {
	secret, err := BearerSecret(r)
	if err != nil {
		return nil, err
	}
	return s.keys.Authenticate(ctx, secret)
}

// BearerSecret returns the key of "Authorization: Bearer agb_...", or an
// unauthenticated error when the header is missing or malformed.
func BearerSecret(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ledger.Errorf(ledger.CodeUnauthenticated, "missing API key: send Authorization: Bearer agb_...")
	}
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ledger.Errorf(ledger.CodeUnauthenticated, "the Authorization header must be Bearer agb_...")
	}
	return strings.TrimSpace(secret), nil
}

// healthz answers 200 while the process serves HTTP at all: a liveness
// probe. It needs no key and reveals nothing. Whether the service can
// answer requests is /readyz.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if !probeMethod(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readiness is the body of /readyz.
type Readiness struct {
	Ready bool   `json:"ready"`
	Role  string `json:"role"` // the writer's (projections.Role*), or "unknown"
	NATS  bool   `json:"nats"` // whether the gateway's connection is up
}

// readyz answers 200 when the writer leads (serves requests) or stands by
// (follows the log, ready to take over) and the gateway is connected to
// NATS; 503 otherwise, with Retry-After. The body says which, with the
// role, so an operator can tell a rebuild from an outage. It needs no key.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !probeMethod(w, r) {
		return
	}
	rd := Readiness{Role: "unknown", NATS: s.nc.IsConnected()}
	if s.cfg.Role != nil {
		rd.Role = s.cfg.Role()
	}
	rd.Ready = rd.NATS && (rd.Role == roleLeader || rd.Role == roleStandby)
	if !rd.Ready {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		writeJSON(w, http.StatusServiceUnavailable, rd)
		return
	}
	writeJSON(w, http.StatusOK, rd)
}

// The writer roles in which the service is ready (projections.RoleLeader
// and RoleStandby; httpapi does not import the writer).
const (
	roleLeader  = "leader"
	roleStandby = "standby"
)

// probeMethod allows GET and HEAD on a probe path, and answers anything
// else 400 with Allow.
func probeMethod(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, ledger.Errorf(ledger.CodeInvalidArgument, "method %s is not allowed on %s", truncate(r.Method, 16), r.URL.Path))
	return false
}

// Shutdown stops hs gracefully within ShutdownTimeout.
func Shutdown(hs *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	return hs.Shutdown(ctx)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
