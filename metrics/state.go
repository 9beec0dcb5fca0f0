package metrics

import (
	"time"

	"github.com/agentbill/agentbill/projections"
	"github.com/prometheus/client_golang/prometheus"
)

// roles are the values of agentbill_writer_role's role label: one series
// each, 1 for the writer's current role and 0 for the others, so a
// dashboard can graph the role and an alert can fire on its absence.
var roles = []string{
	projections.RoleStarting, projections.RoleRebuilding, projections.RoleLeader,
	projections.RoleStandby, projections.RoleStopped,
}

var (
	roleDesc = prometheus.NewDesc("agentbill_writer_role",
		"1 for the writer's current role (starting, rebuilding, leader, standby, stopped), 0 for the others.", []string{"role"}, nil)
	lastSeqDesc = prometheus.NewDesc("agentbill_stream_last_sequence",
		"The last stream sequence the writer's state includes.", nil, nil)
	replayedDesc = prometheus.NewDesc("agentbill_replay_sequence",
		"The sequence the current (or last) replay of the log has reached.", nil, nil)
	replayTargetDesc = prometheus.NewDesc("agentbill_replay_target_sequence",
		"The last sequence the current (or last) replay reads to; progress is agentbill_replay_sequence / this.", nil, nil)
	customersDesc = prometheus.NewDesc("agentbill_customers",
		"Customers in the writer's state.", nil, nil)
	openDesc = prometheus.NewDesc("agentbill_open_reservations",
		"Reservations holding units, across every customer.", nil, nil)
	snapshotAgeDesc = prometheus.NewDesc("agentbill_snapshot_age_seconds",
		"Seconds since the writer last stored a snapshot; absent until it has stored one.", nil, nil)
	snapshotSeqDesc = prometheus.NewDesc("agentbill_snapshot_sequence",
		"The sequence the last stored snapshot covers.", nil, nil)
	snapshotBytesDesc = prometheus.NewDesc("agentbill_snapshot_bytes",
		"The size of the last stored snapshot, before compression.", nil, nil)
	snapshotStoredBytesDesc = prometheus.NewDesc("agentbill_snapshot_stored_bytes",
		"The bytes the last stored snapshot takes in the object store (S2-compressed), per replica.", nil, nil)
	snapshotFailuresDesc = prometheus.NewDesc("agentbill_snapshot_failures_total",
		"Snapshots the writer could not take or store (it retries later; the log stays whole).", nil, nil)
	shadowSeqDesc = prometheus.NewDesc("agentbill_snapshot_shadow_sequence",
		"The last sequence the snapshot shadow (the copy of the state snapshots are encoded from, off the writer's loop) has applied; its lag is agentbill_stream_last_sequence minus this.", nil, nil)
	shadowRestartsDesc = prometheus.NewDesc("agentbill_snapshot_shadow_restarts_total",
		"Times the snapshot shadow fell behind or lost step and was rebuilt from the log.", nil, nil)
	snapshotBasesDesc = prometheus.NewDesc("agentbill_snapshot_bases_total",
		"Snapshots the writer encoded itself before serving, because the newest stored one was too far behind for the snapshot shadow to replay the log beside it.", nil, nil)
	rebuildsDesc = prometheus.NewDesc("agentbill_rebuilds_total",
		"Times the writer dropped its state and replayed the log after a failed append.", nil, nil)
	overloadedDesc = prometheus.NewDesc("agentbill_overloaded_total",
		"Requests answered unavailable because the writer's queue was full.", nil, nil)
	throttledDesc = prometheus.NewDesc("agentbill_throttled_total",
		"Requests answered unavailable because their customer already had its most requests queued for the writer.", nil, nil)
	rateLimitedDesc = prometheus.NewDesc("agentbill_rate_limited_total",
		"Preflights refused rate_limited: their customer sent faster than its rate limit (nothing appended).", nil, nil)
)

// stateCollector reads the writer's atomic counters at scrape time.
type stateCollector struct {
	src Source
	now func() time.Time
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{roleDesc, lastSeqDesc, replayedDesc, replayTargetDesc,
		customersDesc, openDesc, snapshotAgeDesc, snapshotSeqDesc, snapshotBytesDesc, snapshotStoredBytesDesc, snapshotFailuresDesc, shadowSeqDesc, shadowRestartsDesc, snapshotBasesDesc, rebuildsDesc, overloadedDesc, throttledDesc, rateLimitedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	role := c.src.Role()
	for _, r := range roles {
		v := 0.0
		if r == role {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(roleDesc, prometheus.GaugeValue, v, r)
	}
	st := c.src.Stats()
	gauge := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	gauge(lastSeqDesc, st.LastSeq.Load())
	gauge(replayedDesc, st.ReplayedSeq.Load())
	gauge(replayTargetDesc, st.ReplayTarget.Load())
	gauge(customersDesc, st.Customers.Load())
	gauge(openDesc, st.OpenReservations.Load())
	gauge(snapshotSeqDesc, st.Snapshots.SavedSeq.Load())
	gauge(snapshotBytesDesc, st.Snapshots.SavedBytes.Load())
	gauge(snapshotStoredBytesDesc, st.Snapshots.StoredBytes.Load())
	gauge(shadowSeqDesc, st.Snapshots.ShadowSeq.Load())
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(snapshotFailuresDesc, st.Snapshots.Failed.Load())
	counter(shadowRestartsDesc, st.Snapshots.ShadowRestarts.Load())
	counter(snapshotBasesDesc, st.Snapshots.Bases.Load())
	counter(rebuildsDesc, st.Rebuilds.Load())
	counter(overloadedDesc, st.Overloaded.Load())
	counter(throttledDesc, st.Throttled.Load())
	counter(rateLimitedDesc, st.RateLimited.Load())
	if at := st.Snapshots.SavedAt.Load(); at > 0 {
		age := c.now().Sub(time.Unix(0, at)).Seconds()
		ch <- prometheus.MustNewConstMetric(snapshotAgeDesc, prometheus.GaugeValue, max(age, 0))
	}
}
