package webhooks

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go/jetstream"
)

// OrphanAge is how old a webhook consumer without an endpoint record must
// be before the leader deletes it: Add creates the consumer just before
// the record, and a Remove that stopped half way leaves the consumer.
const OrphanAge = 2 * time.Minute

// ReconcileInterval is how often the leader starts again the worker of an
// endpoint that should deliver but has none running: one whose start
// failed (its consumer could not be read, during a failover say) or whose
// worker stopped on an error.
const ReconcileInterval = 5 * time.Second

// manager runs one term of delivery: it watches the endpoints and keeps
// one worker per active endpoint.
type manager struct {
	reg     *Registry
	svc     *Service
	mu      sync.Mutex // guards known (read by metrics)
	known   map[string]*Endpoint
	corrupt map[string]bool // records that do not decode: their consumers are kept
	workers map[string]*running
	want    map[string]*Endpoint // endpoints that should have a running worker
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *running) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// run watches ep.* until ctx ends or the watch fails, then stops every
// worker.
func (m *manager) run(ctx context.Context) error {
	w, err := m.reg.kv.Watch(ctx, keyEndpoint+"*")
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	defer m.stopAll()
	tick := time.NewTicker(ReconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			m.reconcile(ctx)
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("endpoint watch ended")
			}
			if e == nil { // every current endpoint has been seen
				m.deleteOrphans(ctx)
				continue
			}
			m.apply(ctx, e)
		}
	}
}

// apply starts or stops the worker of the endpoint e is about.
func (m *manager) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	id := strings.TrimPrefix(e.Key(), keyEndpoint)
	var ep *Endpoint
	if e.Operation() == jetstream.KeyValuePut {
		var err error
		if ep, err = decodeEndpoint(e.Value()); err != nil {
			m.svc.cfg.Logger.Error("webhooks: skipping a corrupt endpoint record", "key", e.Key(), "err", err)
			m.mu.Lock()
			m.corrupt[id] = true // its consumer is no orphan: keep its events
			m.mu.Unlock()
			return
		}
	}
	m.mu.Lock()
	if ep == nil {
		delete(m.known, id)
	} else {
		m.known[id] = ep.Public()
	}
	m.mu.Unlock()
	r := m.workers[id]
	if ep == nil || ep.Disabled() {
		delete(m.want, id)
		if r != nil {
			r.cancel()
			<-r.done
			delete(m.workers, id)
		}
		return
	}
	if r != nil && !r.finished() {
		return
	}
	if len(m.workers) >= EndpointsMax && r == nil {
		m.svc.cfg.Logger.Error("webhooks: too many endpoints; not delivering to this one", "endpoint", id, "max", EndpointsMax)
		return
	}
	m.want[id] = ep
	m.start(ctx, ep)
}

// reconcile starts a worker for every endpoint that should deliver and
// has none running.
func (m *manager) reconcile(ctx context.Context) {
	for id, ep := range m.want {
		if r := m.workers[id]; r == nil || r.finished() {
			delete(m.workers, id)
			m.start(ctx, ep)
		}
	}
}

// start runs a worker for ep.
func (m *manager) start(ctx context.Context, ep *Endpoint) {
	log := m.svc.cfg.Logger
	key, err := DecodeSecret(ep.Secret)
	if err != nil {
		log.Error("webhooks: endpoint has an unusable secret; not delivering", "endpoint", ep.ID, "err", err)
		return
	}
	cons, err := m.consumer(ctx, ep)
	if err != nil {
		log.Error("webhooks: no consumer for the endpoint; not delivering", "endpoint", ep.ID, "err", err)
		return
	}
	st, err := m.reg.Status(ctx, ep.ID)
	if err != nil {
		log.Warn("webhooks: cannot read the endpoint's status; starting afresh", "endpoint", ep.ID, "err", err)
		st = &Status{}
	}
	w := &worker{ep: ep, key: key, reg: m.reg, cons: cons, send: m.svc.send, sched: m.svc.cfg.Schedule,
		met: m.svc.met, log: log, now: m.svc.cfg.Now, rnd: jitter, st: resumeStatus(st, ep)}
	wctx, cancel := context.WithCancel(ctx)
	r := &running{cancel: cancel, done: make(chan struct{})}
	m.workers[ep.ID] = r
	go func() {
		defer close(r.done)
		w.run(wctx)
	}()
	log.Info("webhooks: delivering to endpoint", "endpoint", ep.ID, "host", endpointHost(ep.URL))
}

// consumer returns the endpoint's consumer, creating it (new events only)
// if it is gone: events between its loss and now are not delivered, and
// the log says so.
func (m *manager) consumer(ctx context.Context, ep *Endpoint) (jetstream.Consumer, error) {
	c, err := m.reg.js.Consumer(ctx, projections.WebhookStream, ConsumerName(ep.ID))
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return c, err
	}
	m.svc.cfg.Logger.Warn("webhooks: the endpoint's consumer was missing; recreated it from now on", "endpoint", ep.ID)
	return m.reg.js.CreateConsumer(ctx, projections.WebhookStream, consumerConfig(ep))
}

// deleteOrphans deletes webhook consumers older than OrphanAge whose
// endpoint record is gone.
func (m *manager) deleteOrphans(ctx context.Context) {
	st, err := m.reg.alertStream(ctx)
	if err != nil {
		return
	}
	names := st.ConsumerNames(ctx)
	for name := range names.Name() {
		id, ok := strings.CutPrefix(name, ConsumerPrefix)
		m.mu.Lock()
		_, known := m.known[id]
		known = known || m.corrupt[id]
		m.mu.Unlock()
		if !ok || known {
			continue
		}
		c, err := st.Consumer(ctx, name)
		if err != nil || m.svc.cfg.Now().Sub(c.CachedInfo().Created) < OrphanAge {
			continue
		}
		if err := st.DeleteConsumer(ctx, name); err == nil {
			m.svc.cfg.Logger.Info("webhooks: deleted the consumer of a removed endpoint", "consumer", name)
		}
	}
}

// stopAll stops every worker and waits for them.
func (m *manager) stopAll() {
	for id, r := range m.workers {
		r.cancel()
		<-r.done
		delete(m.workers, id)
	}
}

// snapshot returns the endpoints the term knows, without secrets.
func (m *manager) snapshot() []*Endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Endpoint, 0, len(m.known))
	for _, ep := range m.known {
		out = append(out, ep)
	}
	return out
}

// endpointHost is the host of a webhook URL, for logs: the rest of a URL
// may hold a secret.
func endpointHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Host
}
