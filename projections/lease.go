package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// Leader election. Every `serve` instance pointed at the same NATS competes
// for one lease per writer (partition) in the KV bucket LeaseBucket. The
// holder renews it with compare-and-set; a standby takes it with
// compare-and-set once the revision it sees has not changed for the lease's
// TTL, measured on its own clock (so no two clocks are compared). The lease
// only decides who should write: what makes a deposed leader harmless is
// the fence on the stream (every commit carries the sequence it was decided
// on, and a new leader's first act is a takeover commit that moves it).
const (
	// LeaseBucket holds the leases, key "writer.<name>".
	LeaseBucket = "AGENTBILL_LEASES"
	// LeaseTTLDefault is how long a lease outlives its last renewal. A
	// standby takes over about this long after the leader dies.
	LeaseTTLDefault = 3 * time.Second
	// LeaseTTLMin and LeaseTTLMax bound LeaseConfig.TTL.
	LeaseTTLMin = 500 * time.Millisecond
	LeaseTTLMax = time.Minute
	// leaseRenewsPerTTL is how many renewals the holder attempts per TTL.
	// It steps down once half the TTL has passed since the last renewal
	// that succeeded was sent: it notices at the next renewal at the
	// latest, three quarters of a TTL after, while a standby waits a whole
	// TTL from when it saw that renewal land.
	leaseRenewsPerTTL = 4
	// LeasePollInterval is how often a standby reads the lease.
	LeasePollInterval = 200 * time.Millisecond
	// leaseValueBytesMax bounds a lease value read from the bucket.
	leaseValueBytesMax = 1024
)

// LeaseConfig turns leader election on (Config.Lease).
type LeaseConfig struct {
	// Instance names this process in the lease (host name and pid, say);
	// a random suffix is added, so restarts never share a holder name.
	Instance string
	// TTL is LeaseTTLDefault if 0.
	TTL time.Duration
}

// ErrLeaseLost reports that the writer no longer holds its lease.
var ErrLeaseLost = errors.New("lease lost")

type leaseValue struct {
	Holder string `json:"holder"`
	TTLMs  int64  `json:"ttl_ms"`
}

// lease is one writer's view of its lease.
type lease struct {
	kv     jetstream.KeyValue
	key    string
	holder string
	ttl    time.Duration
	value  []byte

	mu      sync.Mutex
	rev     uint64    // the revision this process holds; 0 if none
	renewed time.Time // when the renewal that made rev was sent

	seenRev uint64    // the last foreign revision seen
	seenAt  time.Time // when seenRev was first seen

	// taken: the lease was last acquired from another holder (expired),
	// not created afresh (first start, or released by a clean stop), so a
	// deposed leader may still be running.
	taken bool
}

// LeaseKey returns the lease key of a writer (partition).
func LeaseKey(writer string) string { return "writer." + writer }

func openLease(ctx context.Context, js jetstream.JetStream, replicas int, writer string, cfg LeaseConfig) (*lease, error) {
	if cfg.TTL == 0 {
		cfg.TTL = LeaseTTLDefault
	}
	if cfg.TTL < LeaseTTLMin || cfg.TTL > LeaseTTLMax {
		return nil, fmt.Errorf("lease TTL %s: want %s to %s", cfg.TTL, LeaseTTLMin, LeaseTTLMax)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "AgentBill writer leases (leader election)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", LeaseBucket, err)
	}
	holder := cfg.Instance + "/" + uuid.NewString()[:8]
	v, _ := json.Marshal(leaseValue{Holder: holder, TTLMs: cfg.TTL.Milliseconds()})
	return &lease{kv: kv, key: LeaseKey(writer), holder: holder, ttl: cfg.TTL, value: v}, nil
}

// opTimeout bounds one KV operation: a renewal that takes longer is
// useless anyway.
func (l *lease) opTimeout() time.Duration { return l.ttl / leaseRenewsPerTTL }

// tryAcquire reads the lease and takes it if it is free, expired, or
// already this process's. It returns whether this process holds it.
func (l *lease) tryAcquire(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opTimeout())
	defer cancel()
	sent := time.Now()
	e, err := l.kv.Get(ctx, l.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		rev, err := l.kv.Create(ctx, l.key, l.value)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil // someone else was quicker
		}
		if err != nil {
			return false, err
		}
		l.hold(rev, sent)
		l.taken = false
		return true, nil
	}
	if err != nil {
		return false, err
	}
	var v leaseValue
	if len(e.Value()) <= leaseValueBytesMax {
		_ = json.Unmarshal(e.Value(), &v) // unreadable: treat as foreign, default TTL
	}
	l.mu.Lock()
	mine := v.Holder == l.holder && e.Revision() == l.rev
	l.mu.Unlock()
	if mine {
		// Still ours (a step-down whose release did not reach NATS):
		// renew it to be sure nobody takes it meanwhile.
		rev, err := l.kv.Update(ctx, l.key, l.value, e.Revision())
		if err != nil {
			return false, nil // taken meanwhile, or unreachable: poll again
		}
		l.hold(rev, sent)
		return true, nil
	}
	if e.Revision() != l.seenRev {
		l.seenRev, l.seenAt = e.Revision(), time.Now()
		return false, nil
	}
	ttl := l.ttl
	if v.TTLMs > 0 {
		ttl = max(ttl, time.Duration(v.TTLMs)*time.Millisecond)
	}
	if time.Since(l.seenAt) < ttl {
		return false, nil
	}
	rev, err := l.kv.Update(ctx, l.key, l.value, e.Revision())
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil // renewed or taken meanwhile
	}
	if err != nil {
		return false, err
	}
	l.hold(rev, sent)
	l.taken = true
	return true, nil
}

func (l *lease) hold(rev uint64, sent time.Time) {
	l.mu.Lock()
	l.rev, l.renewed = rev, sent
	l.mu.Unlock()
}

// keep renews the lease until ctx ends or the lease is lost; lost receives
// the reason once. stop waits for the renewals to end.
func (l *lease) keep(ctx context.Context) (lost <-chan error, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(l.ttl / leaseRenewsPerTTL)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := l.renew(ctx); err != nil {
				if ctx.Err() == nil {
					ch <- err
				}
				return
			}
		}
	}()
	return ch, func() { cancel(); <-done }
}

// renew extends the lease. It returns ErrLeaseLost if another process
// holds it, or if no renewal has succeeded for so long that a standby may
// take it over before the next one could.
func (l *lease) renew(ctx context.Context) error {
	l.mu.Lock()
	rev, renewed := l.rev, l.renewed
	l.mu.Unlock()
	octx, cancel := context.WithTimeout(ctx, l.opTimeout())
	defer cancel()
	sent := time.Now()
	nrev, err := l.kv.Update(octx, l.key, l.value, rev)
	if err == nil {
		l.hold(nrev, sent)
		return nil
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		l.hold(0, time.Time{})
		return fmt.Errorf("%w: another instance holds %s", ErrLeaseLost, l.key)
	}
	if time.Since(renewed) >= l.ttl/2 {
		// The revision is kept: if nobody takes the lease meanwhile, this
		// process can take it back at once.
		return fmt.Errorf("%w: not renewed for %s: %v", ErrLeaseLost, time.Since(renewed).Round(time.Millisecond), err)
	}
	return nil // try again at the next tick
}

// release gives the lease up (on a clean shutdown or a step-down), so a
// standby need not wait for it to expire. It is best effort: an expired
// lease is as good. If the delete does not get through, the revision is
// kept, so this process can take its own lease back at once (tryAcquire).
func (l *lease) release() {
	l.mu.Lock()
	rev := l.rev
	l.mu.Unlock()
	if rev == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opTimeout())
	defer cancel()
	if l.kv.Delete(ctx, l.key, jetstream.LastRevision(rev)) == nil {
		l.hold(0, time.Time{})
	}
}
