package ledger

import (
	"time"

	"github.com/agentbill/agentbill/events"
)

// A replay of a long log puts into each window every key the log ever
// remembered, and forgets nearly all of them again: of a log spanning ten
// days, nine tenths of the keys are gone by its end. A replay told how it
// ends (State.ReplayEndsWith) skips the puts that its end will certainly
// have forgotten, and checks as it goes that skipping changed nothing a
// later put or the end can see; where it cannot be sure it says so
// (State.ReplaySkipExact), and the caller replays again without skipping.
// The windows it leaves are then exactly those of a replay that put every
// key.
//
// Puts before until are skipped. Apply reads no window, so a skipped put
// changes only the window itself, and only in two ways a later put or the
// end can see:
//   - a later put of the same key would find it (and keep it in place): a
//     skipped key that can still be live at the first kept put, one put at
//     or after track (until − IdempotencyWindow), is kept here as its hash
//     and the time it was last skipped at, and a kept put of a key whose
//     skipped put may not yet be forgotten makes the skipping unsure;
//   - the end would still hold it: a skipped put not forgotten by a kept
//     put by the end (no kept put, or one too early) makes it unsure.
//
// Skipped keys put before track are forgotten by the first kept put, which
// is at least IdempotencyWindow later: they need nothing kept. That the
// window would hold more keys changes nothing kept: skipped keys were all
// put before any kept one, so the bound (max), which forgets in the order
// of the puts, would forget them first, and a kept key goes when the kept
// ones alone exceed it, as it does here.
//
// Puts out of time order (the commits of several writers, interleaved)
// are allowed. The window forgets from its oldest put, so a key put
// behind a younger one stays until that one goes: every time above is
// therefore the latest put time so far (maxAt), which is never earlier
// than when the key is really forgotten. Once a put is kept, every put
// is, so that skipped keys stay first in the order of the puts.
type windowSkip struct {
	until, track time.Time
	hashes       map[uint64]skippedAt // skipped keys put since track
	newest       time.Time            // the latest put time when a put was last skipped
	maxAt        time.Time            // the latest put time so far
	skipped      bool                 // a put was skipped
	kept         bool                 // a put at or after until was made
	unsure       bool                 // skipping may have changed the window
}

// skippedAt is the latest put time when a tracked key was last skipped,
// as Unix seconds and nanoseconds, so the map holds no pointers.
type skippedAt struct {
	sec  int64
	nsec int32
}

func (a skippedAt) time() time.Time { return time.Unix(a.sec, int64(a.nsec)) }

// Where a replay starts skipping, before the last put into a window that
// its last commit shows (ReplayEndsWith): the window, less this margin.
// With no such put in the last commit, ReplaySkipUntilAgo before its last
// event: the keys skipped are then forgotten by any put in the log's last
// day.
const (
	ReplaySkipMargin   = time.Minute
	ReplaySkipUntilAgo = 2 * IdempotencyWindow
)

// skipReplayUntil starts skipping the puts before until (see windowSkip).
func (w *window[V]) skipReplayUntil(until time.Time) {
	w.skip = &windowSkip{until: until, track: until.Add(-IdempotencyWindow), hashes: make(map[uint64]skippedAt)}
}

// skips reports whether a put at at is to be skipped: skipReplay then
// takes it instead of put.
func (w *window[V]) skips(at time.Time) bool {
	return w.skip != nil && !w.skip.kept && at.Before(w.skip.until)
}

// tracks reports whether a skipped put at at needs its key (skipReplay).
func (w *window[V]) tracks(at time.Time) bool { return !w.skip.latest(at).Before(w.skip.track) }

// latest returns the latest put time so far, a put at at included.
func (sk *windowSkip) latest(at time.Time) time.Time {
	if at.After(sk.maxAt) {
		return at
	}
	return sk.maxAt
}

// skipReplay takes a put at at that skips says is skipped; key is needed
// only if tracks says so.
func (w *window[V]) skipReplay(key string, at time.Time) {
	sk := w.skip
	track := w.tracks(at)
	sk.maxAt = sk.latest(at)
	sk.skipped, sk.newest = true, sk.maxAt
	w.skipped++
	if track {
		sk.hashes[w.hash(key)] = skippedAt{sec: sk.maxAt.Unix(), nsec: int32(sk.maxAt.Nanosecond())}
	}
}

// keepReplay checks a kept put of key at at against the skipped puts
// (put calls it while skipping).
func (w *window[V]) keepReplay(key string, at time.Time) {
	sk := w.skip
	sk.maxAt = sk.latest(at)
	sk.kept = true
	cut := sk.maxAt.Add(-IdempotencyWindow) // what the puts so far have forgotten, at the latest
	if !sk.skipped || sk.newest.Before(cut) {
		// No skipped put is live, and none is to come (skips): the rest
		// of the replay puts as usual.
		w.endSkip(sk.unsure)
		return
	}
	if p, ok := sk.hashes[w.hash(key)]; ok && !p.time().Before(cut) {
		sk.unsure = true
	}
}

// endSkip stops skipping; a window made unsure stays so (replaySkipExact).
func (w *window[V]) endSkip(unsure bool) {
	w.skip = nil
	w.skipUnsure = w.skipUnsure || unsure
}

// replaySkipExact ends the skipping at the end of a replay and reports
// whether the window is exactly as if no put had been skipped: a skipping
// still under way has skipped a put that no kept put has forgotten.
func (w *window[V]) replaySkipExact() bool {
	if sk := w.skip; sk != nil {
		w.endSkip(sk.unsure || sk.skipped)
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

// ReplayEndsWith tells a fresh state how the events about to be applied,
// a replay's, end: last are the replay's last events, in log order (its
// last commits), of which only those at or before notAfter (if not zero)
// will be applied. Puts into the windows of remembered requests and
// closed holds that the end will have forgotten may then be skipped
// (windowSkip), starting where the last put into each window that last
// shows forgets; ReplaySkipExact must be called when the replay ends.
func (s *State) ReplayEndsWith(last []*events.Envelope, notAfter time.Time) {
	end, remembered, closed := lastPuts(last, notAfter)
	if end.IsZero() {
		if end = notAfter; end.IsZero() {
			return // no event: nothing to skip
		}
	}
	s.idem.skipReplayUntil(skipUntil(remembered, end))
	s.closed.skipReplayUntil(skipUntil(closed, end))
}

// lastPuts returns the time of the last event of evs at or before
// notAfter (if not zero), and of the last that remembers a request and
// the last that closes a hold (zero if none).
func lastPuts(evs []*events.Envelope, notAfter time.Time) (end, remembered, closed time.Time) {
	for _, e := range evs {
		if !notAfter.IsZero() && e.At.After(notAfter) {
			break
		}
		end = e.At
		if req, _ := requestOf(e.Data); req.IdempotencyKey != "" {
			remembered = e.At
		}
		if closesHold(e.Data) {
			closed = e.At
		}
	}
	return end, remembered, closed
}

// ReplayEndPuts reports which windows evs, some of a replay's last
// events, show a put into (ReplayEndsWith): once later events have shown
// both, earlier ones would not move where the skipping starts.
func ReplayEndPuts(evs []*events.Envelope, notAfter time.Time) (remembered, closed bool) {
	_, r, c := lastPuts(evs, notAfter)
	return !r.IsZero(), !c.IsZero()
}

// skipUntil is where a replay ending at end skips puts until, given the
// time of the last put into the window that its last commit shows (zero
// if none).
func skipUntil(put, end time.Time) time.Time {
	if put.IsZero() {
		return end.Add(-ReplaySkipUntilAgo)
	}
	return put.Add(-IdempotencyWindow - ReplaySkipMargin)
}

// closesHold reports whether applying d puts a hold into the window of
// closed holds (State.close, or a late record): a guess made from the
// event alone, which ReplayEndsWith may get wrong at the cost of a replay.
func closesHold(d events.Data) bool {
	switch v := d.(type) {
	case *events.Recorded:
		return v.ReservationID != ""
	case *events.Released, *events.Expired:
		return true
	}
	return false
}

// ReplaySkipFailed reports, during a replay started with ReplayEndsWith,
// whether skipping is already known to have changed a window: the state
// is then wrong, and the replay should start again on a fresh state
// without ReplayEndsWith.
func (s *State) ReplaySkipFailed() bool { return s.idem.skipFailed() || s.closed.skipFailed() }

// ReplaySkipExact ends a replay started with ReplayEndsWith: true if the
// state is exactly as if no put had been skipped; false if it is not
// sure, and the state must then be rebuilt without ReplayEndsWith.
func (s *State) ReplaySkipExact() bool {
	a, b := s.idem.replaySkipExact(), s.closed.replaySkipExact()
	return a && b
}

// ReplaySkipped returns how many puts into the windows the replay skipped.
func (s *State) ReplaySkipped() int { return s.idem.skipped + s.closed.skipped }
