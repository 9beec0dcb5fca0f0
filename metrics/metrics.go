// Package metrics exposes the writer's health to Prometheus: what it
// decided (by operation, outcome and reason), the credit grants it made
// and forfeited, partial approvals and overdrafts, how long preflights took,
// how big each group commit was and how long its append took, and, read
// at scrape time, its role, sequence, replay progress, customers, open
// reservations, snapshot age and snapshot failures. It implements
// projections.Observer; the observer methods only touch atomic counters,
// so they never block the writer.
package metrics

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/errcode"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Bounds on serving /metrics.
const (
	// ScrapesInFlightMax bounds concurrent scrapes; past it a scrape is
	// answered 503.
	ScrapesInFlightMax = 4
	// ScrapeTimeout bounds one scrape.
	ScrapeTimeout = 10 * time.Second
)

// Label values of agentbill_decisions_total's outcome.
const (
	OutcomeApproved = "approved" // a preflight that reserved units
	OutcomeRefused  = "refused"  // a preflight refused with a reason
	OutcomeOK       = "ok"       // any other request answered with a reply
	OutcomeError    = "error"    // answered with an error; reason is its code
)

// Histogram buckets. The writer answers a preflight in about a
// millisecond at low load (one fsync); the buckets reach a second so a
// stalled log shows as such and not as +Inf alone.
var (
	latencyBuckets   = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
	batchSizeBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, float64(projections.CommitEventsMax)}
	batchByteBuckets = prometheus.ExponentialBuckets(256, 4, 8) // 256 B .. 4 MiB
)

// Source is what the metrics read at scrape time. *projections.Writer
// implements it.
type Source interface {
	Stats() *projections.Stats
	Role() string
}

// Metrics is the collector set of one writer. Its zero value is not
// usable; call New.
type Metrics struct {
	reg        *prometheus.Registry
	decisions  *prometheus.CounterVec
	preflight  prometheus.Histogram
	batchSize  prometheus.Histogram
	batchBytes prometheus.Histogram
	appendDur  prometheus.Histogram
	integrity  *prometheus.CounterVec
	ledger     ledgerCounters
	handler    http.Handler
}

// New returns the metrics, registered with a fresh registry along with the
// Go runtime and process collectors. Bind the writer with Watch once it
// exists (the writer needs the Metrics as its Observer first).
func New(log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.Default()
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentbill_decisions_total",
			Help: "Requests the writer answered, by operation, outcome (approved, refused, ok, error) and reason (refusal reason or error code).",
		}, []string{"op", "outcome", "reason"}),
		preflight: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentbill_preflight_duration_seconds",
			Help:    "Time from a preflight's arrival at the writer to its answer, durable append included.",
			Buckets: latencyBuckets,
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentbill_commit_events",
			Help:    "Events per acknowledged group commit.",
			Buckets: batchSizeBuckets,
		}),
		batchBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentbill_commit_bytes",
			Help:    "Bytes per acknowledged group commit.",
			Buckets: batchByteBuckets,
		}),
		appendDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentbill_append_duration_seconds",
			Help:    "Time from sending a group commit to its acknowledgement (fsynced, or replicated).",
			Buckets: latencyBuckets,
		}),
	}
	m.integrity = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentbill_integrity_violations_total",
		Help: "Breaks of the ledger's history the writer met, by kind (chain, signature, writer, gap, behind, recreated, missing, snapshot); any but snapshot halts it.",
	}, []string{"kind"})
	m.ledger = newLedgerCounters()
	m.reg.MustRegister(m.decisions, m.preflight, m.batchSize, m.batchBytes, m.appendDur, m.integrity,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(m.ledger.collectors()...)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: ScrapesInFlightMax,
		Timeout:             ScrapeTimeout,
	})
	return m
}

// Watch adds the gauges read from src at every scrape. Call it once.
func (m *Metrics) Watch(src Source, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	m.reg.MustRegister(&stateCollector{src: src, now: now})
}

// WatchFollower adds agentbill_dashboard_sequence, read from seq at every
// scrape: the last sequence the dashboard's log follower has applied.
// Its distance to agentbill_stream_last_sequence is how far the dashboard
// lags the ledger. Call it once.
func (m *Metrics) WatchFollower(seq func() uint64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agentbill_dashboard_sequence",
		Help: "The last stream sequence the dashboard's log follower has applied; it lags agentbill_stream_last_sequence by what the dashboard does not show yet.",
	}, func() float64 { return float64(seq()) }))
}

// Register adds collectors that another package owns (the webhook
// deliveries) to the registry served at /metrics.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Answered implements projections.Observer.
func (m *Metrics) Answered(op events.Op, reply ledger.Reply, err error, took time.Duration) {
	outcome, reason := OutcomeOK, ""
	switch r := reply.(type) {
	case *ledger.PreflightReply:
		outcome = OutcomeApproved
		if !r.Approved {
			outcome, reason = OutcomeRefused, r.Reason
		}
	}
	if err != nil {
		outcome, reason = OutcomeError, string(errcode.Classify(err).Code)
	}
	m.decisions.WithLabelValues(string(op), outcome, reason).Inc()
	if op == events.OpPreflight {
		m.preflight.Observe(took.Seconds())
	}
}

// Committed implements projections.Observer.
func (m *Metrics) Committed(events, bytes int, took time.Duration) {
	m.batchSize.Observe(float64(events))
	m.batchBytes.Observe(float64(bytes))
	m.appendDur.Observe(took.Seconds())
}

// IntegrityViolation implements projections.Observer.
func (m *Metrics) IntegrityViolation(kind string) {
	m.integrity.WithLabelValues(kind).Inc()
}

var (
	_ projections.Observer      = (*Metrics)(nil)
	_ projections.EventObserver = (*Metrics)(nil)
)
