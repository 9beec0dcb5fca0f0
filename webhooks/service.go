// Package webhooks delivers the alert stream (projections.AlertStream) to
// HTTP endpoints in the Standard Webhooks format. Registry keeps the
// endpoints in a key-value bucket, each with a durable consumer on the
// webhook stream (projections.WebhookStream, the service's own copy of the
// alert stream); Service runs, on the leader only, one worker per active
// endpoint that delivers its events in order, retrying with backoff. See
// README.md for the invariants and docs/webhooks.md for the user guide.
package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// LeaderPoll is how often Run asks whether this process leads: the
// writer offers no leadership callback, so a new leader starts
// delivering within this much of taking over, and an old one stops
// within this plus FetchWait of losing the lease (the consumers keep the
// position; see README.md for why two for a moment is harmless).
const LeaderPoll = 250 * time.Millisecond

// Config configures a Service.
type Config struct {
	Conn     *nats.Conn // the service's connection (serve's credentials)
	Replicas int        // of the bucket, if the service creates it
	// Schedule is the retry schedule; DefaultSchedule() if zero.
	Schedule Schedule
	// RequestTimeout bounds one attempt; RequestTimeoutDefault if 0.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	Now            func() time.Time // the clock; time.Now if nil
}

// Service delivers webhooks while this process leads.
type Service struct {
	cfg     Config
	met     *Metrics
	send    *Sender
	current atomic.Pointer[manager] // the running term's, for metrics
}

// New returns a service; Run or Deliver starts it.
func New(cfg Config) (*Service, error) {
	if cfg.Schedule == (Schedule{}) {
		cfg.Schedule = DefaultSchedule()
	}
	if err := cfg.Schedule.Validate(); err != nil {
		return nil, err
	}
	if cfg.Conn == nil {
		return nil, errors.New("webhooks: Config.Conn is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, met: newMetrics(), send: NewSender(cfg.RequestTimeout, cfg.Now)}, nil
}

// Collectors are the delivery metrics, to register in serve's registry.
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.met.deliveries, s.met.attempt, s.met.lag, stateCollector{s}}
}

// Run delivers while lead reports true (polled every LeaderPoll), stops
// when it reports false, and returns when ctx ends.
func (s *Service) Run(ctx context.Context, lead func() bool) {
	tick := time.NewTicker(LeaderPoll)
	defer tick.Stop()
	var stop func()
	for {
		switch on := lead(); {
		case on && stop == nil:
			s.cfg.Logger.Info("webhooks: delivering (this writer leads)")
			tctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); s.Deliver(tctx) }()
			stop = func() { cancel(); <-done }
		case !on && stop != nil:
			stop()
			stop = nil
			s.cfg.Logger.Info("webhooks: stopped delivering (this writer no longer leads)")
		}
		select {
		case <-ctx.Done():
			if stop != nil {
				stop()
			}
			s.send.Close()
			return
		case <-tick.C:
		}
	}
}

// Deliver delivers until ctx ends, unconditionally (Run calls it while
// leading; bench and tests call it directly). It retries, with backoff,
// whatever fails underneath (the bucket, the watch).
func (s *Service) Deliver(ctx context.Context) {
	pause := s.cfg.Schedule.Min
	for ctx.Err() == nil {
		err := s.term(ctx)
		if ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Warn("webhooks: delivery stopped; restarting", "err", err, "in", pause)
		sleep(ctx, pause)
		pause = min(pause*2, errorPauseMax)
	}
}

func (s *Service) term(ctx context.Context) error {
	reg, err := OpenRegistry(ctx, s.cfg.Conn, Options{Replicas: s.cfg.Replicas, Now: s.cfg.Now})
	if err != nil {
		return err
	}
	m := &manager{reg: reg, svc: s, workers: map[string]*running{}, known: map[string]*Endpoint{}, corrupt: map[string]bool{},
		want: map[string]*Endpoint{}}
	s.current.Store(m)
	defer s.current.CompareAndSwap(m, nil)
	if err := m.run(ctx); err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	return nil
}

// jitter is the schedule's randomness.
func jitter() float64 { return rand.Float64() }
