package ledger

import "time"

// A replay of a long log puts into each window every key the log ever
// remembered, and forgets nearly all of them again: of a log spanning ten
// days, nine tenths of the keys are gone by its end. A replay told when
// its last event is (State.ReplayEndsAt) skips the puts that its end will
// certainly have forgotten, and checks as it goes that skipping changed
// nothing a later put or the end can see; where it cannot be sure it says
// so (State.ReplaySkipExact), and the caller replays again without
// skipping. The windows it leaves are then exactly those of a replay that
// put every key.
//
// Puts before until are skipped. Apply reads no window, so a skipped put
// changes only the window itself, and only in two ways a later put or the
// end can see:
//   - a later put of the same key would find it (and keep it in place): a
//     skipped key that can still be live at the first kept put, one put at
//     or after track (until − IdempotencyWindow), is kept here as its hash,
//     and a kept put of a key with a live skipped hash makes the skipping
//     unsure;
//   - the end would still hold it: a skipped key not forgotten by a kept
//     put by the end (no kept put, or one too early) makes it unsure.
//
// Skipped keys put before track are forgotten by the first kept put, which
// is at least IdempotencyWindow later: they need nothing kept. That the
// window would hold more keys changes nothing kept: skipped keys are the
// oldest, so the bound (max) would forget them before any kept key, and a
// kept key goes when the kept ones alone exceed it, as it does here. Puts
// must come in time order, as a log's events do (a skipped key behind a
// younger one would outlive its time); one that does not makes the
// skipping unsure.
type windowSkip struct {
	until, track time.Time
	live         skippedQueue      // skipped puts since track, oldest first
	hashes       map[uint64]uint32 // their hashes, with how many live puts each
	last         time.Time         // of the last put
	skipped      bool              // a put was skipped
	kept         bool              // a put at or after until was made
	unsure       bool              // skipping may have changed the window
}

// skippedPut is a skipped put since track: its time (as Unix seconds and
// nanoseconds, so the queue holds no pointers) and its key's hash.
type skippedPut struct {
	sec  int64
	nsec int32
	hash uint64
}

// ReplaySkipUntilAgo is how long before a replay's last event a window
// put must be to be skipped: two windows, so that the keys skipped are
// forgotten by any put in the log's last day.
const ReplaySkipUntilAgo = 2 * IdempotencyWindow

// skippedQueueBlock is how many skipped puts a block of the queue holds.
const skippedQueueBlock = 4096

// skippedQueue is a FIFO of skipped puts in blocks, like entryQueue.
type skippedQueue struct {
	blocks [][]skippedPut
	head   int
	n      int
}

func (q *skippedQueue) push(p skippedPut) {
	if len(q.blocks) == 0 || len(q.blocks[len(q.blocks)-1]) == skippedQueueBlock {
		q.blocks = append(q.blocks, make([]skippedPut, 0, skippedQueueBlock))
	}
	last := &q.blocks[len(q.blocks)-1]
	*last = append(*last, p)
	q.n++
}

func (q *skippedQueue) first() *skippedPut { return &q.blocks[0][q.head] }

func (q *skippedQueue) pop() {
	b := q.blocks[0]
	q.head++
	q.n--
	if q.head == len(b) && (len(b) == skippedQueueBlock || q.n == 0) {
		q.blocks[0] = nil
		q.blocks = q.blocks[1:]
		q.head = 0
	}
}

// skipReplayUntil starts skipping the puts before until (see windowSkip).
func (w *window[V]) skipReplayUntil(until time.Time) {
	w.skip = &windowSkip{until: until, track: until.Add(-IdempotencyWindow), hashes: make(map[uint64]uint32)}
}

// skips reports whether a put at at is to be skipped: skipReplay then
// takes it instead of put.
func (w *window[V]) skips(at time.Time) bool {
	return w.skip != nil && at.Before(w.skip.until)
}

// tracks reports whether a skipped put at at needs its key (skipReplay).
func (w *window[V]) tracks(at time.Time) bool { return !at.Before(w.skip.track) }

// skipReplay takes a put at at that skips says is skipped; key is needed
// only if tracks says so.
func (w *window[V]) skipReplay(key string, at time.Time) {
	sk := w.skip
	sk.inOrder(at)
	sk.forget(at)
	sk.skipped = true
	w.skipped++
	if !w.tracks(at) {
		return
	}
	h := w.hash(key)
	sk.hashes[h]++
	sk.live.push(skippedPut{sec: at.Unix(), nsec: int32(at.Nanosecond()), hash: h})
}

// keepReplay checks a kept put of key at at against the skipped puts
// (put calls it while skipping).
func (w *window[V]) keepReplay(key string, at time.Time) {
	sk := w.skip
	sk.inOrder(at)
	sk.forget(at)
	sk.kept = true
	if sk.live.n == 0 {
		// No skipped put is live, and puts come in time order, so none
		// is to come: the rest of the replay puts as usual.
		w.endSkip(sk.unsure)
		return
	}
	if sk.hashes[w.hash(key)] > 0 {
		sk.unsure = true
	}
}

func (sk *windowSkip) inOrder(at time.Time) {
	if at.Before(sk.last) {
		sk.unsure = true
	}
	sk.last = at
}

// forget drops the skipped puts a put at now forgets (window.forget).
func (sk *windowSkip) forget(now time.Time) {
	cut := now.Add(-IdempotencyWindow)
	for sk.live.n > 0 {
		p := sk.live.first()
		if !time.Unix(p.sec, int64(p.nsec)).Before(cut) {
			return
		}
		if sk.hashes[p.hash]--; sk.hashes[p.hash] == 0 {
			delete(sk.hashes, p.hash)
		}
		sk.live.pop()
	}
}

// endSkip stops skipping; a window made unsure stays so (replaySkipExact).
func (w *window[V]) endSkip(unsure bool) {
	w.skip = nil
	w.skipUnsure = w.skipUnsure || unsure
}

// replaySkipExact ends the skipping at the end of a replay and reports
// whether the window is exactly as if no put had been skipped.
func (w *window[V]) replaySkipExact() bool {
	if sk := w.skip; sk != nil {
		w.endSkip(sk.unsure || sk.skipped && (!sk.kept || sk.live.n > 0))
	}
	unsure := w.skipUnsure
	w.skipUnsure = false
	return !unsure
}

// skipFailed reports whether skipping has already made the window unsure,
// so that a replay can stop early and start again without skipping.
func (w *window[V]) skipFailed() bool {
	return w.skipUnsure || w.skip != nil && w.skip.unsure
}

// ReplayEndsAt tells a fresh state that the events about to be applied,
// a replay's, end at last (the time of its last event): puts into the
// windows of remembered requests and closed holds that the end will have
// forgotten may then be skipped (windowSkip). ReplaySkipExact must be
// called when the replay ends.
func (s *State) ReplayEndsAt(last time.Time) {
	until := last.Add(-ReplaySkipUntilAgo)
	s.idem.skipReplayUntil(until)
	s.closed.skipReplayUntil(until)
}

// ReplaySkipFailed reports, during a replay started with ReplayEndsAt,
// whether skipping is already known to have changed a window: the state
// is then wrong, and the replay should start again on a fresh state
// without ReplayEndsAt.
func (s *State) ReplaySkipFailed() bool { return s.idem.skipFailed() || s.closed.skipFailed() }

// ReplaySkipExact ends a replay started with ReplayEndsAt: true if the
// state is exactly as if no put had been skipped; false if it is not
// sure, and the state must then be rebuilt without ReplayEndsAt.
func (s *State) ReplaySkipExact() bool {
	a, b := s.idem.replaySkipExact(), s.closed.replaySkipExact()
	return a && b
}

// ReplaySkipped returns how many puts into the windows the replay skipped.
func (s *State) ReplaySkipped() int { return s.idem.skipped + s.closed.skipped }
