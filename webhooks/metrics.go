package webhooks

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds the consumer lookups of one scrape.
const scrapeTimeout = 3 * time.Second

// Metrics are the deliveries' Prometheus collectors. serve registers
// Service.Collectors in its registry (served at /metrics).
type Metrics struct {
	deliveries *prometheus.CounterVec
	attempt    prometheus.Histogram
	lag        prometheus.Histogram
}

func newMetrics() *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentbill_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: delivered (2xx), failed (other status, timeout, refused: retried), gone (410: endpoint disabled), blocked (address not public: retried).",
		}, []string{"outcome"}),
		attempt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentbill_webhook_attempt_duration_seconds",
			Help:    "Time of one webhook POST, from dialling to the response's head and body (at most ResponseBytesMax).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentbill_webhook_delivery_latency_seconds",
			Help:    "Time from an alert's publication to its acknowledged (2xx) delivery, retries included.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 60, 300, 3600, 86400},
		}),
	}
	for _, o := range []string{OutcomeDelivered, OutcomeFailed, OutcomeGone, OutcomeBlocked} {
		m.deliveries.WithLabelValues(o)
	}
	return m
}

func (m *Metrics) attempted(a Attempt) {
	m.deliveries.WithLabelValues(a.Outcome).Inc()
	m.attempt.Observe(a.Took.Seconds())
}

var (
	pendingDesc = prometheus.NewDesc("agentbill_webhook_pending",
		"Events waiting for a webhook endpoint (not yet delivered, the one being retried included), on the leader.",
		[]string{"endpoint"}, nil)
	endpointsDesc = prometheus.NewDesc("agentbill_webhook_endpoints",
		"Webhook endpoints by state (active, parked, disabled), on the leader.",
		[]string{"state"}, nil)
)

// stateCollector reads, at scrape time, the pending count of every
// endpoint the leader's delivery knows and the endpoints by state. A
// standby reports none.
type stateCollector struct{ s *Service }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- endpointsDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.current.Load()
	if m == nil {
		return
	}
	eps := m.snapshot()
	byState := map[State]int{StateActive: 0, StateParked: 0, StateDisabled: 0}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, ep := range eps {
		byState[ep.State]++
		if n, err := m.reg.Pending(ctx, ep.ID); err == nil {
			ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(n), ep.ID)
		}
	}
	for s, n := range byState {
		ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, float64(n), string(s))
	}
}
