package projections

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/retry"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go/jetstream"
)

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	JS     jetstream.JetStream
	Logger *slog.Logger
}

// Follower is a read-side projection: the ledger state of every writer
// (partition), replayed from the log and kept up to date as commits are
// appended. It decides nothing; dashboards read it (Read).
type Follower struct {
	cfg   FollowerConfig
	ready atomic.Bool
	mu    sync.RWMutex
	state *ledger.State
	seq   uint64
}

// NewFollower returns a follower; Run starts it.
func NewFollower(cfg FollowerConfig) *Follower {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Follower{cfg: cfg, state: ledger.NewState()}
}

// Ready reports whether the follower has replayed the log once.
func (f *Follower) Ready() bool { return f.ready.Load() }

// Seq returns the last sequence applied.
func (f *Follower) Seq() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.seq
}

// Read calls fn with the state and the sequence it is at, under the
// follower's lock: fn must be quick, must not change s, and must not keep
// it.
func (f *Follower) Read(fn func(s *ledger.State, seq uint64)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state, f.seq)
}

// Run replays the log, then follows it until ctx ends, starting over from
// the last sequence applied after any error (rebuildRetry; the count starts
// again once an attempt applied anything). It returns nil when ctx ends,
// and the last error when the log stays out of reach past rebuildRetry's
// bounds.
func (f *Follower) Run(ctx context.Context) error {
	b, err := retry.New(rebuildRetry())
	if err != nil {
		return err
	}
	for {
		seq, ready := f.Seq(), f.ready.Load()
		err := f.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if f.Seq() != seq || f.ready.Load() != ready {
			b.Reset() // progress: this is a new outage
		}
		f.cfg.Logger.Warn("log follower interrupted; resuming", "err", err, "seq", f.Seq(), "attempt", b.Attempt())
		if err := b.Wait(ctx, err); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("log follower: gave up: %w", err)
		}
	}
}

func (f *Follower) run(ctx context.Context) error {
	if !f.ready.Load() {
		s, seq, err := Rebuild(ctx, f.cfg.JS, ReplayStop{}, nil)
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.state, f.seq = s, seq
		f.mu.Unlock()
		f.ready.Store(true)
		f.cfg.Logger.Info("log follower caught up", "seq", seq, "customers", s.Customers())
	}
	msgs, stop, err := tail(ctx, f.cfg.JS, events.LogSubjects, f.Seq()+1)
	if err != nil {
		return err
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			if err := f.apply(m); err != nil {
				return err
			}
		}
	}
}

func (f *Follower) apply(m jetstream.Msg) error {
	md, err := m.Metadata()
	if err != nil {
		return err
	}
	c, err := events.DecodeCommit(m.Data())
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if md.Sequence.Stream <= f.seq {
		return nil
	}
	for _, e := range c.Events {
		f.state.Apply(e)
	}
	f.seq = md.Sequence.Stream
	return nil
}
