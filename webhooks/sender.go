package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Delivery bounds.
const (
	// RequestTimeoutDefault bounds one attempt: connect, send, and read
	// the response's head and up to ResponseBytesMax of its body.
	RequestTimeoutDefault = 10 * time.Second
	// ResponseBytesMax bounds what is read of a response's body (only to
	// reuse the connection and quote an error).
	ResponseBytesMax = 64 * 1024
	// errorQuoteMax bounds the response text kept in an endpoint's last
	// error.
	errorQuoteMax = 200
	// idleConnsPerHost bounds the kept-alive connections per receiver
	// host: each endpoint's worker sends one request at a time.
	idleConnsPerHost = 2
	dialTimeout      = 5 * time.Second
	keepAlive        = 30 * time.Second
	// UserAgent identifies deliveries.
	UserAgent = "AgentBill-Webhooks/1"
)

// Outcomes of one attempt (the outcome label of
// agentbill_webhook_deliveries_total).
const (
	OutcomeDelivered = "delivered" // 2xx: acknowledged
	OutcomeFailed    = "failed"    // another status, a timeout, a refused connection: retried
	OutcomeGone      = "gone"      // 410: the endpoint is disabled
	OutcomeBlocked   = "blocked"   // the dialled address is not public: retried (DNS may change), then parked
)

// Attempt is what one POST did.
type Attempt struct {
	Outcome string
	Status  int // 0 if no response
	Took    time.Duration
	Err     error // nil only if delivered
}

// Sender POSTs signed deliveries. It follows no redirect (a 3xx is a
// failure), uses no proxy (the dialled address must be the receiver's),
// and dials through the address guard unless the endpoint allows private
// addresses. It is safe for concurrent use.
type Sender struct {
	guarded, open *http.Client
	now           func() time.Time
}

// NewSender returns a sender whose attempts time out after timeout
// (RequestTimeoutDefault if 0), stamping them with now (time.Now if nil).
func NewSender(timeout time.Duration, now func() time.Time) *Sender {
	if timeout <= 0 {
		timeout = RequestTimeoutDefault
	}
	if now == nil {
		now = time.Now
	}
	return &Sender{guarded: newClient(timeout, false), open: newClient(timeout, true), now: now}
}

func newClient(timeout time.Duration, allowPrivate bool) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         newDialer(allowPrivate).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: idleConnsPerHost,
		// No cap on connections per host: endpoints on one host must not
		// queue behind each other (each worker has one request in flight,
		// and EndpointsMax bounds the workers).
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Send makes one attempt to deliver body, the event id, to ep, signed
// with key (DecodeSecret of ep.Secret).
func (s *Sender) Send(ctx context.Context, ep *Endpoint, key []byte, id string, body []byte) Attempt {
	start := time.Now()
	a := s.send(ctx, ep, key, id, body)
	a.Took = time.Since(start)
	return a
}

func (s *Sender) send(ctx context.Context, ep *Endpoint, key []byte, id string, body []byte) Attempt {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return Attempt{Outcome: OutcomeFailed, Err: fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	ts := s.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(key, id, ts, body))
	hc := s.guarded
	if ep.AllowPrivate {
		hc = s.open
	}
	res, err := hc.Do(req)
	if err != nil {
		// A *url.Error quotes the whole URL, and a webhook URL's path or
		// query is often a secret: keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s to %s: %w", ue.Op, req.URL.Host, ue.Err)
		}
		if errors.Is(err, ErrPrivateAddress) {
			return Attempt{Outcome: OutcomeBlocked, Err: err}
		}
		return Attempt{Outcome: OutcomeFailed, Err: err}
	}
	defer res.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(res.Body, ResponseBytesMax))
	a := Attempt{Status: res.StatusCode}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		a.Outcome = OutcomeDelivered
	case res.StatusCode == http.StatusGone:
		a.Outcome, a.Err = OutcomeGone, fmt.Errorf("HTTP 410 Gone: the receiver asked to stop deliveries%s", quote(head))
	default:
		a.Outcome, a.Err = OutcomeFailed, fmt.Errorf("HTTP %d%s", res.StatusCode, quote(head))
	}
	return a
}

// quote returns the start of a response body for an error, as valid text.
func quote(b []byte) string {
	if len(b) > errorQuoteMax {
		b = b[:errorQuoteMax]
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), string(utf8.RuneError)))
	if s == "" {
		return ""
	}
	return ": " + s
}

// Close drops the kept-alive connections.
func (s *Sender) Close() {
	s.guarded.CloseIdleConnections()
	s.open.CloseIdleConnections()
}
