package metrics

import (
	"strconv"

	"github.com/agentbill/agentbill/events"
	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the grant counters' source. A grant's source is free
// text (up to ledger.GrantSourceBytesMax bytes), so any label but the two
// the ledger gives a meaning is folded into SourceOther: a label per
// distinct text would let admins grow the series without bound.
const (
	SourcePurchase = events.SourcePurchase
	SourceRollover = events.SourceRollover
	SourceOther    = "other"
)

// ledgerCounters count what the committed events say about money:
// credits granted and forfeited, partial approvals, overdrafts entered.
// Refusals by reason, the new ones included, are agentbill_decisions_total
// (reason is a ledger constant, so that label is bounded too). No counter
// has a customer, agent or scope label.
type ledgerCounters struct {
	grants        *prometheus.CounterVec
	grantUnits    *prometheus.CounterVec
	grantsExpired prometheus.Counter
	priced        prometheus.Counter
	unpriced      prometheus.Counter
	unitsExpired  prometheus.Counter
	partials      prometheus.Counter
	overdrafts    prometheus.Counter
}

func newLedgerCounters() ledgerCounters {
	return ledgerCounters{
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentbill_grants_total",
			Help: "Credit grants made, by source: purchase, rollover (the ledger's, from unused allowance) or other.",
		}, []string{"source"}),
		grantUnits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentbill_grant_units_total",
			Help: "Units granted as credits, by source (purchase, rollover, other).",
		}, []string{"source"}),
		grantsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentbill_grants_expired_total",
			Help: "Credit grants that reached their expiry with units unused (grant_expired events).",
		}),
		unitsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentbill_grant_units_expired_total",
			Help: "Units of credit grants forfeited at their expiry, unused.",
		}),
		partials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentbill_partial_approvals_total",
			Help: "Preflights approved for less than their estimate (min_units).",
		}),
		overdrafts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentbill_overdrafts_started_total",
			Help: "Times a customer's remaining first went below zero in a period, into its overdraft (overdraft_started events).",
		}),
		priced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentbill_priced_records_total",
			Help: "Records whose reported usage was priced from a price list.",
		}),
		unpriced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentbill_unpriced_records_total",
			Help: "Records whose reported usage could not be priced (unknown model, no rate for its tier, usage missing): charged their hold or the units given.",
		}),
	}
}

func (l ledgerCounters) collectors() []prometheus.Collector {
	// The vectors start with their bounded label values, so a dashboard
	// sees 0 rather than no series before the first grant.
	for _, src := range []string{SourcePurchase, SourceRollover, SourceOther} {
		l.grants.WithLabelValues(src)
		l.grantUnits.WithLabelValues(src)
	}
	return []prometheus.Collector{l.grants, l.grantUnits, l.grantsExpired, l.unitsExpired, l.partials, l.overdrafts,
		l.priced, l.unpriced}
}

// Appended implements projections.EventObserver: it counts the events of
// acknowledged commits.
func (m *Metrics) Appended(e *events.Envelope) {
	l := m.ledger
	switch d := e.Data.(type) {
	case *events.Granted:
		src := sourceLabel(d.Source)
		l.grants.WithLabelValues(src).Inc()
		l.grantUnits.WithLabelValues(src).Add(unitsValue(d.Units))
	case *events.GrantExpired:
		l.grantsExpired.Inc()
		l.unitsExpired.Add(unitsValue(d.Remaining))
	case *events.Reserved:
		if !d.Requested.IsZero() {
			l.partials.Inc()
		}
	case *events.OverdraftStarted:
		l.overdrafts.Inc()
	case *events.Recorded:
		switch {
		case d.Pricing != nil:
			l.priced.Inc()
		case d.Unpriced != "":
			l.unpriced.Inc()
		}
	}
}

// sourceLabel bounds a grant's source to the label values above.
func sourceLabel(source string) string {
	switch source {
	case SourcePurchase, SourceRollover:
		return source
	}
	return SourceOther
}

// unitsValue is an amount as a metric's float. Metrics are not on the
// money path: the nearest float64 is exact enough for a graph, and the log
// keeps the exact amount. A negative or unreadable amount counts 0, as a
// counter may not go down.
func unitsValue(u events.Units) float64 {
	f, err := strconv.ParseFloat(u.String(), 64)
	if err != nil || f < 0 {
		return 0
	}
	return f
}
