package projections

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReplayFetchBytesMax bounds the bytes the replay consumer asks for at once.
// Commits are up to CommitBytesMax each, so a bound in messages could ask
// for more than the client buffers (64 MiB by default) and stall on
// slow-consumer drops; a bound in bytes cannot.
const ReplayFetchBytesMax = 16 * 1024 * 1024

// ReplayStop says where a replay starts and ends. The zero value replays
// the whole stream as it is when the replay starts.
type ReplayStop struct {
	// StartSeq or StartTime: begin at this sequence, or at the first commit
	// stored at or after this time (for audits); the start otherwise.
	StartSeq  uint64
	StartTime time.Time
	// UntilSeq or UntilTime: end after this sequence, or before the first
	// event decided after this time; the last sequence at the start
	// otherwise.
	UntilSeq  uint64
	UntilTime time.Time
	// Progress, if set, is called every ReplayProgressEvery commits with
	// the sequence reached and the last one to read.
	Progress func(seq, last uint64)
	// Writer, if set, replays only that writer's (partition's) commits,
	// up to its last one; every writer's otherwise.
	Writer string
	// Verify, if set, checks every commit before any of its events is
	// passed on (LogVerifier); the first that fails ends the replay with
	// its *IntegrityError, and so does an unsigned commit that no later
	// signed one covers, at the end (unless KeepUncovered: the caller
	// asks Verify.Uncovered itself).
	Verify        *LogVerifier
	KeepUncovered bool
	// Background marks a replay nobody waits for (the snapshot shadow's,
	// beside a serving writer): one decoder, both it and the applying
	// goroutine yield the processor every replayBackgroundYieldEvery
	// commits or events, and the collector is left as it is, so that the
	// writer's requests and its lease renewals keep their cores.
	Background bool
	// Recycle says fn keeps neither the envelope it is given nor the
	// struct of its data past its return, only their fields' values
	// (ledger.State.Apply keeps none): the structs of a commit's events
	// are then reused for later commits (events.Arena), which cuts what
	// a replay allocates by a quarter to a third, and so how often the
	// collector runs.
	Recycle bool

	// endsWith, if set, is given the events of the range's last commits
	// before the replay starts, in log order: enough of them to show a
	// put into each of the state's windows (ledger.ReplayEndPuts), or
	// the last ReplayEndCommitsMax. Rebuild's state then skips what its
	// end will have forgotten (ledger.State.ReplayEndsWith).
	endsWith func([]*events.Envelope)
}

// replayBackgroundYieldEvery is how many events (or commits, for the
// decoder) a background replay handles between two yields: well under a
// millisecond of work.
const replayBackgroundYieldEvery = 64

// ReplayProgressEvery is how often, in commits, Replay reports progress.
const ReplayProgressEvery = 1000

// Replay pipeline bounds.
const (
	// ReplayPipelineDepth bounds commits fetched and being decoded ahead of
	// the one being applied.
	ReplayPipelineDepth = 256
	// ReplayDecodersMax bounds the goroutines decoding commits in parallel.
	ReplayDecodersMax = 8
)

// Replay reads the stream from its first commit up to stop.UntilSeq (or the
// last sequence when the replay starts) and calls fn with each event in
// order, with the sequence of the commit holding it. Commits are decoded in
// parallel and handed to fn strictly in log order. It returns the last
// sequence read.
func Replay(ctx context.Context, js jetstream.JetStream, stop ReplayStop, fn func(seq uint64, e *events.Envelope) error) (uint64, error) {
	filter, last, err := events.LogSubjects, uint64(0), error(nil)
	if stop.Writer == "" {
		last, err = LastSequence(ctx, js)
	} else {
		filter = events.LogSubject(stop.Writer)
		var m *jetstream.RawStreamMsg
		if m, err = lastMsgOn(ctx, js, filter); m != nil {
			last = m.Sequence
		}
	}
	if err != nil {
		return 0, err
	}
	if stop.UntilSeq != 0 && stop.UntilSeq < last {
		last = stop.UntilSeq
	}
	if last == 0 {
		return 0, nil
	}
	if !stop.StartTime.IsZero() {
		first, err := SeqAtTime(ctx, js, stop.StartTime, last)
		if err != nil {
			return 0, err
		}
		stop.StartSeq = max(stop.StartSeq, first)
	}
	if stop.StartSeq > last {
		return 0, nil
	}
	if stop.endsWith != nil {
		stop.endsWith(lastEvents(ctx, js, filter, max(stop.StartSeq, 1), last, stop.UntilTime))
	}
	if stop.Progress != nil {
		stop.Progress(0, last)
	}
	ccfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy,
		InactiveThreshold: events.ConsumerInactiveMax}
	if stop.StartSeq > 1 {
		ccfg.DeliverPolicy, ccfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, stop.StartSeq
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamName, ccfg)
	if err != nil {
		return 0, fmt.Errorf("replay consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(ReplayFetchBytesMax))
	if err != nil {
		return 0, fmt.Errorf("replay consumer: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Stopping the iterator may wait for the ordered consumer's attempt to
	// recreate itself when JetStream is gone (see tailStopWaitMax), so it
	// stops here, once, and a replay returns without waiting for that.
	go func() {
		<-ctx.Done()
		it.Stop()
	}()

	tuneGC, gcDone := func() {}, func() {}
	decoders := min(runtime.GOMAXPROCS(0), ReplayDecodersMax)
	if stop.Background {
		decoders = 1
	} else {
		tuneGC, gcDone = raiseGCForReplay()
	}
	defer gcDone()
	ordered := make(chan *replayJob, ReplayPipelineDepth)
	work := make(chan *replayJob, ReplayPipelineDepth)
	// With stop.Recycle, each commit is decoded into an arena that comes
	// back here once its events are applied. A decoder makes one only
	// when none is free, so there are never more than commits in the
	// pipeline, and all of them fit here.
	arenas := make(chan *events.Arena, ReplayPipelineDepth+decoders+1)
	for range decoders {
		go func() {
			var decoded int
			for j := range work {
				if decoded++; stop.Background && decoded%replayBackgroundYieldEvery == 0 {
					runtime.Gosched()
				}
				if stop.Recycle {
					select {
					case j.arena = <-arenas:
					default:
						j.arena = new(events.Arena)
					}
				}
				j.commit, j.err = events.DecodeCommitInto(j.data, j.arena)
				if v := stop.Verify; v != nil && j.err == nil {
					j.check = v.checkAlone(j.seq, j.subject, j.header, j.data, j.commit)
				}
				close(j.done)
			}
		}()
	}
	go func() { // the reader: fetch commits in order, up to last
		defer close(ordered)
		defer close(work)
		var seq uint64
		for seq < last {
			msg, err := it.Next()
			j := &replayJob{done: make(chan struct{})}
			if err == nil {
				var md *jetstream.MsgMetadata
				if md, err = msg.Metadata(); err == nil {
					seq = md.Sequence.Stream
					if seq > last {
						return
					}
					j.seq, j.data, j.subject, j.header = seq, msg.Data(), msg.Subject(), msg.Headers()
				}
			}
			if err != nil {
				j.seq, j.err = seq, fmt.Errorf("replay after sequence %d: %w", seq, err)
				close(j.done)
				select {
				case ordered <- j:
				case <-ctx.Done():
				}
				return
			}
			select {
			case ordered <- j:
			case <-ctx.Done():
				return
			}
			select {
			case work <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	var seq, n, applied uint64
	for j := range ordered {
		select {
		case <-j.done:
		case <-ctx.Done():
			return seq, ctx.Err()
		}
		if j.err != nil {
			if ctx.Err() != nil {
				return seq, ctx.Err()
			}
			return seq, fmt.Errorf("replay: commit at sequence %d: %w", j.seq, j.err)
		}
		if v := stop.Verify; v != nil {
			if err := v.link(j.seq, j.subject, j.header, j.check); err != nil {
				return seq, firstFailure(ctx, js, stop, j.seq, err)
			}
		}
		for _, e := range j.commit.Events {
			if !stop.UntilTime.IsZero() && e.At.After(stop.UntilTime) {
				return seq, nil // events are in time order: the rest are later
			}
			if err := fn(j.seq, e); err != nil {
				return seq, err
			}
			if applied++; applied%replayGCTuneEvents == 0 {
				tuneGC()
			}
			if stop.Background && applied%replayBackgroundYieldEvery == 0 {
				runtime.Gosched()
			}
		}
		if j.arena != nil {
			j.arena.Reset()
			select {
			case arenas <- j.arena:
			default: // full: let the collector have it
			}
			j.commit, j.arena = nil, nil
		}
		seq = j.seq
		n++
		if stop.Progress != nil && (n%ReplayProgressEvery == 0 || seq == last) {
			stop.Progress(seq, last)
		}
	}
	if seq != last {
		if ctx.Err() != nil {
			return seq, ctx.Err()
		}
		return seq, fmt.Errorf("replay stopped at sequence %d of %d", seq, last)
	}
	if v := stop.Verify; v != nil {
		if err := v.finish(stop.KeepUncovered); err != nil {
			return seq, firstFailure(ctx, js, stop, seq, err)
		}
	}
	return seq, nil
}

// firstFailure names the first commit through until that fails its
// checks, when err is a signature break found by a lazy verifier (which
// checks only each writer's last signature, so it may meet a later one
// first): it reads the range again checking every signature.
func firstFailure(ctx context.Context, js jetstream.JetStream, stop ReplayStop, until uint64, err error) error {
	v := stop.Verify
	if ie := asIntegrity(err); ie == nil || !v.Lazy || ie.Kind != KindSignature {
		return err
	}
	strict := stop
	strict.Verify, strict.Progress, strict.UntilSeq = v.strict(), nil, until
	if _, serr := Replay(ctx, js, strict, func(uint64, *events.Envelope) error { return nil }); asIntegrity(serr) != nil {
		return serr
	}
	return err
}

// lastMsgOn returns the last message on subject, nil if there is none.
func lastMsgOn(ctx context.Context, js jetstream.JetStream, subject string) (*jetstream.RawStreamMsg, error) {
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", events.StreamName, err)
	}
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last message on %s: %w", subject, err)
	}
	return m, nil
}

// ReplayEndCommitsMax bounds the commits a rebuild reads back from its
// last one to find the last put into each window (lastEvents): a log
// that ends in more commits without a request than this is replayed
// twice at worst.
const ReplayEndCommitsMax = 256

// replayEndCommits is ReplayEndCommitsMax but in tests.
var replayEndCommits = ReplayEndCommitsMax

// lastEvents returns the events of the commits on filter from last back
// to first, in log order, as far back as it takes to show a put into
// each window (ledger.ReplayEndPuts; events after notAfter, if not zero,
// do not count) or ReplayEndCommitsMax commits; what it read if a commit
// cannot be.
func lastEvents(ctx context.Context, js jetstream.JetStream, filter string, first, last uint64, notAfter time.Time) []*events.Envelope {
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil
	}
	var commits [][]*events.Envelope // newest first
	var remembered, closed bool
	for seq, read := last, 0; seq >= first && read < replayEndCommits && !(remembered && closed); seq, read = seq-1, read+1 {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			break
		}
		if filter != events.LogSubjects && m.Subject != filter {
			continue // another writer's
		}
		c, err := events.DecodeCommit(m.Data)
		if err != nil {
			break
		}
		commits = append(commits, c.Events)
		r, cl := ledger.ReplayEndPuts(c.Events, notAfter)
		remembered, closed = remembered || r, closed || cl
	}
	var evs []*events.Envelope
	for i := len(commits) - 1; i >= 0; i-- {
		evs = append(evs, commits[i]...)
	}
	return evs
}

// SeqAtTime returns the first sequence (up to last) stored at or after t,
// or last+1 if there is none: a binary search over stored times (the
// stream denies deletes, so it has no gaps).
func SeqAtTime(ctx context.Context, js jetstream.JetStream, t time.Time, last uint64) (uint64, error) {
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return 0, err
	}
	lo, hi := uint64(1), last+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := st.GetMsg(ctx, mid)
		if err != nil {
			return 0, fmt.Errorf("stream time search at %d: %w", mid, err)
		}
		if m.Time.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// replayJob is one commit moving through the replay pipeline.
type replayJob struct {
	seq     uint64
	data    []byte
	subject string
	header  nats.Header
	commit  *events.Commit
	arena   *events.Arena // with ReplayStop.Recycle: holds commit's events
	check   checked       // with ReplayStop.Verify: its checks of the commit alone
	err     error
	done    chan struct{} // closed when commit or err is set
}

// Rebuild returns a fresh state with every event up to stop applied, and
// the sequence it covers.
//
// The state skips the puts into its windows that the replay's end will
// have forgotten (ledger.State.ReplayEndsWith): most of a long log's
// remembered requests and closed holds. Where skipping cannot be sure to
// leave the windows as they would be, which a key put again across the
// skipped range or an end whose last ReplayEndCommitsMax commits show no
// put into a window can cause, the replay starts again without skipping;
// rebuildsAgain counts those.
func Rebuild(ctx context.Context, js jetstream.JetStream, stop ReplayStop, def *ledger.DefaultBudget) (*ledger.State, uint64, error) {
	stop.Recycle = true // Apply keeps no event's struct
	for skip := true; ; skip = false {
		s := ledger.NewState()
		s.Default = def
		stop.endsWith = nil
		if skip {
			stop.endsWith = func(evs []*events.Envelope) { s.ReplayEndsWith(evs, stop.UntilTime) }
		}
		seq, err := Replay(ctx, js, stop, func(_ uint64, e *events.Envelope) error {
			s.Apply(e)
			if skip && s.ReplaySkipFailed() {
				return errReplaySkipUnsure
			}
			return nil
		})
		if skip && (errors.Is(err, errReplaySkipUnsure) || err == nil && !s.ReplaySkipExact()) {
			rebuildsAgain.Add(1)
			if stop.Verify != nil {
				stop.Verify.restart() // the caller's: it reads the heads it ends with
			}
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return s, seq, nil
	}
}

// errReplaySkipUnsure stops a Rebuild whose skipping may have changed its
// state, to start it again without.
var errReplaySkipUnsure = errors.New("replay: skipping remembered keys may have changed the state")

// rebuildsAgain counts the Rebuilds replayed again without skipping.
var rebuildsAgain atomic.Uint64
