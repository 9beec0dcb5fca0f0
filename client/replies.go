package client

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// A Client takes its replies on its connection's one reply subscription,
// as nats.go's request mux does, but waits for each with a pooled timer
// and the caller's context instead of a context derived for every
// attempt: the derived context (a timer, a closure and a registration
// with the caller's context, undone after) cost 2.7 µs of the 64 bench
// clients' CPU a request (BENCHMARKS.md, "2026-12-07 (later)").
//
// The subscription is made at the first request, on the connection's
// inbox prefix (nats.CustomInboxPrefix: the prefix a user's NATS
// permissions allow), as <inbox>.*; a reply's last token names its
// request. A reply to a request that stopped waiting finds nobody and is
// dropped. Every Client on one connection shares its subscription (a
// program may make a Client per request); when the connection closes,
// waiting requests end with nats.ErrConnectionClosed and the connection
// is forgotten.

// replyTokenBase is the base of a reply subject's last token.
const replyTokenBase = 36

// replies is a connection's reply subscription and the requests waiting
// on it.
type replies struct {
	nc      *nats.Conn
	mu      sync.Mutex
	sub     *nats.Subscription
	prefix  string // the subscription's subject without its "*"
	closed  bool   // the subscription closed with the connection
	next    uint64
	waiting map[uint64]chan *nats.Msg
}

// connReplies holds each connection's replies (*nats.Conn to *replies)
// until the connection closes.
var connReplies sync.Map

// repliesOf returns nc's replies, made if it has none.
func repliesOf(nc *nats.Conn) *replies {
	if nc == nil {
		return &replies{} // never used: request refuses a nil connection
	}
	if r, ok := connReplies.Load(nc); ok {
		return r.(*replies)
	}
	r, _ := connReplies.LoadOrStore(nc, &replies{nc: nc})
	return r.(*replies)
}

// timers are stopped timers for the waits; a timer is stopped before it
// returns here (Go 1.23 and later: a stopped timer delivers nothing).
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// request sends body on subject and waits for the reply until ctx ends
// (ctx.Err()) or timeout passes (nats.ErrTimeout). A no-responders status
// is nats.ErrNoResponders, as from nats.go's requests.
func (c *Client) request(ctx context.Context, subject string, body []byte, timeout time.Duration) (*nats.Msg, error) {
	if c.nc == nil {
		return nil, nats.ErrInvalidConnection // as nats.go's requests answer
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := c.replies
	ch := make(chan *nats.Msg, 1)
	r.mu.Lock()
	if err := r.subscribeLocked(); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	r.next++
	id := r.next
	r.waiting[id] = ch
	prefix := r.prefix
	r.mu.Unlock()

	var buf [64]byte
	reply := string(strconv.AppendUint(append(buf[:0], prefix...), id, replyTokenBase))
	if err := c.nc.PublishRequest(subject, reply, body); err != nil {
		r.drop(id)
		return nil, err
	}
	t := timers.Get().(*time.Timer)
	t.Reset(timeout)
	defer func() {
		t.Stop()
		timers.Put(t)
	}()
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, nats.ErrConnectionClosed
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return nil, nats.ErrNoResponders
		}
		return m, nil
	case <-ctx.Done():
		r.drop(id)
		return nil, ctx.Err()
	case <-t.C:
		r.drop(id)
		return nil, nats.ErrTimeout
	}
}

// subscribeLocked makes the reply subscription if there is none yet.
func (r *replies) subscribeLocked() error {
	if r.closed {
		return nats.ErrConnectionClosed
	}
	if r.sub != nil {
		return nil
	}
	prefix := r.nc.NewInbox() + "."
	sub, err := r.nc.Subscribe(prefix+"*", r.deliver(len(prefix)))
	if err != nil {
		return err
	}
	sub.SetClosedHandler(func(string) { r.close() })
	r.sub, r.prefix, r.waiting = sub, prefix, make(map[uint64]chan *nats.Msg)
	return nil
}

// deliver returns the subscription's handler: it hands a reply to the
// request its last token names, if that request still waits.
func (r *replies) deliver(prefixLen int) nats.MsgHandler {
	return func(m *nats.Msg) {
		if len(m.Subject) <= prefixLen {
			return
		}
		id, err := strconv.ParseUint(m.Subject[prefixLen:], replyTokenBase, 64)
		if err != nil {
			return
		}
		r.mu.Lock()
		ch := r.waiting[id]
		delete(r.waiting, id)
		r.mu.Unlock()
		if ch != nil {
			ch <- m // buffered for one, and only this send
		}
	}
}

// drop forgets a request that stopped waiting.
func (r *replies) drop(id uint64) {
	r.mu.Lock()
	delete(r.waiting, id)
	r.mu.Unlock()
}

// close ends every waiting request and forgets the connection: it
// closed.
func (r *replies) close() {
	connReplies.CompareAndDelete(r.nc, r)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for id, ch := range r.waiting {
		close(ch)
		delete(r.waiting, id)
	}
}

// subject is the reply subscription's subject, "" before the first
// request: the server names it, quoted, when it refuses it.
func (r *replies) subject() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub == nil {
		return ""
	}
	return r.prefix + "*"
}
