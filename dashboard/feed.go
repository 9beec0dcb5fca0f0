package dashboard

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/httpapi"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
)

// Bounds on the live feed.
const (
	// FeedClientsMax bounds pages connected to the feed at once; past it
	// a new one is answered unavailable (its EventSource retries).
	FeedClientsMax = 64
	// FeedClientBufferMax bounds the events queued for one page. A page
	// that falls further behind misses events and is told how many.
	FeedClientBufferMax = 256
	// FeedRecentMax is how many of the newest events a page gets when it
	// connects, so a reload does not empty the feed.
	FeedRecentMax = 50
	// FeedHeartbeat is how often an idle stream gets a comment line, so
	// proxies and the browser keep it open.
	FeedHeartbeat = 15 * time.Second
	// FeedWriteTimeout bounds one write to a page; the gateway's
	// WriteTimeout is per response and would end the stream.
	FeedWriteTimeout = 10 * time.Second
	// FeedRetryMillis is the reconnect delay the stream asks of the
	// browser.
	FeedRetryMillis = 2000
)

// feedTypes are the events the feed carries. The writer announces each,
// once committed, on agentbill.events.<ctok>.<type> (core NATS).
var feedTypes = []events.Type{
	events.TypeBudgetExhausted, events.TypeThresholdCrossed, events.TypeDenied,
	events.TypeOverdraftStarted, events.TypeGrantExpired,
}

func feedSubjects() []string {
	subs := make([]string, len(feedTypes))
	for i, t := range feedTypes {
		subs[i] = events.EventFilter("", t)
	}
	return subs
}

// feed fans the announced events out to the connected pages.
type feed struct {
	log     *slog.Logger
	onAlert func() // called for every event received
	subs    []*nats.Subscription
	mu      sync.Mutex
	clients map[*feedClient]struct{}
	recent  [][]byte // the newest FeedRecentMax events, oldest first
	closed  bool
	done    chan struct{} // closed by close
}

type feedClient struct {
	ch      chan []byte
	dropped int // events not queued because ch was full; under feed.mu
}

// startFeed subscribes to the feed subjects on nc; onAlert is called for
// every event received.
func startFeed(nc *nats.Conn, log *slog.Logger, onAlert func()) (*feed, error) {
	f := &feed{log: log, onAlert: onAlert, clients: map[*feedClient]struct{}{}, done: make(chan struct{})}
	for _, subj := range feedSubjects() {
		sub, err := nc.Subscribe(subj, f.receive)
		if err != nil {
			f.close()
			return nil, fmt.Errorf("dashboard: subscribe %s: %w", subj, err)
		}
		f.subs = append(f.subs, sub)
	}
	return f, nil
}

// receive turns one announced event into a feed line and queues it for
// every page, without ever blocking on a slow one.
func (f *feed) receive(m *nats.Msg) {
	f.onAlert()
	e, err := events.Decode(m.Data)
	if err != nil {
		f.log.Warn("dashboard feed: undecodable event", "subject", m.Subject, "err", err)
		return
	}
	line, err := json.Marshal(eventRowOf(0, e))
	if err != nil {
		f.log.Warn("dashboard feed: cannot encode event", "id", e.ID, "err", err)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.recent) == FeedRecentMax {
		f.recent = append(f.recent[:0], f.recent[1:]...)
	}
	f.recent = append(f.recent, line)
	for c := range f.clients {
		select {
		case c.ch <- line:
		default:
			c.dropped++
		}
	}
}

// join registers a page and returns the recent events to send it first;
// nil if the feed is closed or full.
func (f *feed) join() (*feedClient, [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.clients) >= FeedClientsMax {
		return nil, nil
	}
	c := &feedClient{ch: make(chan []byte, FeedClientBufferMax)}
	f.clients[c] = struct{}{}
	return c, append([][]byte(nil), f.recent...)
}

func (f *feed) leave(c *feedClient) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.clients, c)
}

// takeDropped returns and resets how many events c missed.
func (f *feed) takeDropped(c *feedClient) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := c.dropped
	c.dropped = 0
	return n
}

// close unsubscribes and ends every stream; it reports whether it was
// open.
func (f *feed) close() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.closed = true
	for _, s := range f.subs {
		_ = s.Unsubscribe()
	}
	close(f.done)
	return true
}

// GET /ui/api/feed: server-sent events. Each "alert" event's data is an
// EventRow; a "dropped" event says how many alerts this page missed
// because it fell behind.
func (d *Dashboard) stream(w http.ResponseWriter, r *http.Request) {
	c, recent := d.feed.join()
	if c == nil {
		httpapi.WriteError(w, ledger.Errorf(ledger.CodeUnavailable, "too many live feeds open; retry"))
		return
	}
	defer d.feed.leave(c)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	// The server's ReadTimeout would cancel a stream that outlives it; a
	// GET has nothing more to read, and a gone page still ends it.
	_ = rc.SetReadDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	send := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(FeedWriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("retry: %d\n: connected\n\n", FeedRetryMillis) {
		return
	}
	for _, line := range recent {
		if !send("event: alert\ndata: %s\n\n", line) {
			return
		}
	}
	d.pump(r, c, send)
}

// pump writes queued events until the page goes or the feed closes.
func (d *Dashboard) pump(r *http.Request, c *feedClient, send func(string, ...any) bool) {
	beat := time.NewTicker(FeedHeartbeat)
	defer beat.Stop()
	for {
		var ok bool
		select {
		case <-r.Context().Done():
			return
		case <-d.feed.done:
			return
		case line := <-c.ch:
			ok = send("event: alert\ndata: %s\n\n", line)
			if n := d.feed.takeDropped(c); n > 0 && ok {
				ok = send("event: dropped\ndata: %d\n\n", n)
			}
		case <-beat.C:
			ok = send(": heartbeat\n\n")
		}
		if !ok {
			return
		}
	}
}
