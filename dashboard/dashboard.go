// Package dashboard is the operator's web page of `agentbill serve --http`:
// every customer's position against its limit, a live feed of exhaustions,
// crossed thresholds, refusals, overdrafts and expired grants, and one
// customer's history with a chart of its usage over the period, its credit
// grants and its scope limits. It reads; it changes nothing. The page and
// its assets are embedded in the binary (no CDN: it works offline), and
// every data path needs an auditor or admin API key (auth.go).
package dashboard

import (
	"embed"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/httpapi"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

//go:embed assets
var assetFS embed.FS

// Ledger is the read side the customer table comes from: a follower of
// the log (projections.Follower), never the writer itself, so reading the
// table never delays a decision.
type Ledger interface {
	// Ready reports whether the follower has replayed the log.
	Ready() bool
	// Read runs fn under the follower's lock with its state and the last
	// sequence that state includes. fn must not keep s.
	Read(fn func(s *ledger.State, seq uint64))
}

// Config configures a Dashboard.
type Config struct {
	Conn   *nats.Conn            // the live feed's core subscriptions
	JS     jetstream.JetStream   // history reads (package audit)
	Keys   httpapi.Authenticator // API keys
	Ledger Ledger                // the customer table
	Logger *slog.Logger          // slog.Default() if nil
	Now    func() time.Time      // time.Now if nil
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Conn == nil {
		errs = append(errs, errors.New("dashboard: Conn is required"))
	}
	if c.JS == nil {
		errs = append(errs, errors.New("dashboard: JS is required"))
	}
	if c.Keys == nil {
		errs = append(errs, errors.New("dashboard: Keys is required"))
	}
	if c.Ledger == nil {
		errs = append(errs, errors.New("dashboard: Ledger is required"))
	}
	return errors.Join(errs...)
}

// Dashboard is an http.Handler for "/" and httpapi.DashboardPrefix.
type Dashboard struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	feed    *feed
	tables  chan struct{} // TableReadsMax
	cache   tableCache
	history chan struct{} // HistoryReadsMax
	// cacheNow is the table cache's own clock, not the ledger's: time.Now
	// (a test may stop it, export_test.go).
	cacheNow func() time.Time
}

// New subscribes to the live feed and returns the dashboard. Close
// unsubscribes and ends every live feed connection.
func New(cfg Config) (*Dashboard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Dashboard{
		cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), cacheNow: time.Now,
		tables:  make(chan struct{}, TableReadsMax),
		history: make(chan struct{}, HistoryReadsMax),
	}
	f, err := startFeed(cfg.Conn, cfg.Logger, d.cache.invalidate)
	if err != nil {
		return nil, err
	}
	d.feed = f
	d.routes()
	d.log.Info("dashboard started", "feed_subjects", feedSubjects())
	return d, nil
}

// Close unsubscribes the feed and ends the live connections, so a
// graceful HTTP shutdown does not wait for them.
func (d *Dashboard) Close() {
	if d.feed.close() {
		d.log.Info("dashboard stopped")
	}
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	d.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy allows the page's own scripts, styles and data
// only: nothing inline, nothing from elsewhere, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func (d *Dashboard) routes() {
	const p = httpapi.DashboardPrefix
	d.mux.HandleFunc("GET /{$}", d.page)
	d.mux.HandleFunc("POST "+p+"login", d.login)
	d.mux.HandleFunc("POST "+p+"logout", d.logout)
	d.mux.HandleFunc("GET "+p+"static/{name}", serveStatic)
	d.mux.HandleFunc("GET "+p+"api/customers", d.withKey(d.customers))
	d.mux.HandleFunc("GET "+p+"api/customers/{id}", d.withKey(d.customer))
	d.mux.HandleFunc("GET "+p+"api/feed", d.withKey(d.stream))
	d.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, ledger.Errorf(ledger.CodeNotFound, "no such dashboard path: %s %s", r.Method, truncate(r.URL.Path, 128)))
	})
}

// StaticMaxAge is how long a browser may cache the page's scripts and
// styles; short, since they change with the binary and carry no version.
const StaticMaxAge = 5 * time.Minute

// staticFiles are the assets served as they are (the pages are served by
// page and loginPage); anything else under static/ is not found.
var staticFiles = map[string]bool{"app.js": true, "style.css": true}

func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !staticFiles[name] {
		httpapi.WriteError(w, ledger.Errorf(ledger.CodeNotFound, "no such asset: %s", truncate(name, 64)))
		return
	}
	w.Header().Set("Cache-Control", "private, max-age="+strconv.Itoa(int(StaticMaxAge/time.Second)))
	http.ServeFileFS(w, r, assetFS, "assets/"+name)
}

// acquire takes a slot of sem, or answers unavailable (retry) and
// reports false when all are taken. The caller releases with <-sem.
func acquire(w http.ResponseWriter, sem chan struct{}, what string) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		httpapi.WriteError(w, ledger.Errorf(ledger.CodeUnavailable, "too many %s in progress; retry", what))
		return false
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
