// Package client is the Go client for agent workers: preflight before a
// run, record after it, or wrap the run in Gate. It speaks NATS
// request/reply to the AgentBill writer, encodes customer IDs into subject
// tokens as docs/PROTOCOL.md says, gives every mutating request an
// idempotency key, and retries "unavailable" with the same key (through
// internal/retry, with jitter), so a retry never charges twice.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/retry"
	"github.com/agentbill/agentbill/ledger"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// Retry bounds.
const (
	// RequestTimeout bounds one attempt.
	RequestTimeout = 5 * time.Second
	// AttemptsMax bounds the attempts of one call (first try included).
	// With the backoff below, the attempts span 5 to 10 s (jitter) when
	// nobody answers at all: a failover (lease TTL 3 s,
	// projections.LeaseTTLDefault) fits with room to spare.
	AttemptsMax = 16
	// BackoffMin and BackoffMax bound the wait between attempts, before
	// jitter (internal/retry: each wait is drawn from [step/2, step]). The
	// cap keeps the gap after a failover ends under a second.
	BackoffMin = 20 * time.Millisecond
	BackoffMax = time.Second
	// CallElapsedMax bounds the time one call's attempts span: no attempt
	// starts later than this after the first. Without it, attempts that each
	// time out (a writer that accepts and never answers) would take
	// AttemptsMax × RequestTimeout, 80 s.
	CallElapsedMax = 30 * time.Second
)

// Client sends requests to AgentBill. It is safe for concurrent use.
type Client struct {
	nc       *nats.Conn
	timeout  time.Duration
	attempts int
	fail     failState
	replies  *replies // the connection's, shared (replies.go)
}

// Option configures a Client.
type Option func(*Client)

// WithTimeout sets the per-attempt timeout.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithAttempts sets how many times a call is tried (at least 1).
func WithAttempts(n int) Option { return func(c *Client) { c.attempts = max(1, n) } }

// New returns a client over an existing connection.
func New(nc *nats.Conn, opts ...Option) *Client {
	c := &Client{nc: nc, timeout: RequestTimeout, attempts: AttemptsMax, replies: repliesOf(nc),
		fail: failState{policy: Deny, logger: slog.Default(), now: time.Now}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Conn returns the client's NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// NewIdempotencyKey returns a fresh random key.
func NewIdempotencyKey() string { return uuid.Must(uuid.NewV7()).String() }

// Preflight asks to reserve req.EstimatedUnits for the customer. A refusal
// is not an error: check reply.Approved.
func (c *Client) Preflight(ctx context.Context, customerID string, req ledger.PreflightRequest) (*ledger.PreflightReply, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var out ledger.PreflightReply
	if err := c.call(ctx, events.OpPreflight, customerID, &req, &out); err != nil {
		return c.unavailablePreflight(customerID, err)
	}
	return &out, nil
}

// Record reports actual usage, settling the named (or oldest) reservation.
func (c *Client) Record(ctx context.Context, customerID string, req ledger.RecordRequest) (*ledger.RecordReply, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var out ledger.RecordReply
	return &out, c.call(ctx, events.OpRecord, customerID, &req, &out)
}

// Release gives a reservation's hold back.
func (c *Client) Release(ctx context.Context, customerID, reservationID string) (*ledger.ReleaseReply, error) {
	return c.ReleaseWith(ctx, customerID, ledger.ReleaseRequest{ReservationID: reservationID})
}

// ReleaseWith is Release with the caller's whole request, so a caller that
// retries (the HTTP gateway, for its own clients) keeps its idempotency
// key. A key is generated if the request has none.
func (c *Client) ReleaseWith(ctx context.Context, customerID string, req ledger.ReleaseRequest) (*ledger.ReleaseReply, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var out ledger.ReleaseReply
	return &out, c.call(ctx, events.OpRelease, customerID, &req, &out)
}

// ExtendWith is Extend with the caller's whole request (see ReleaseWith).
func (c *Client) ExtendWith(ctx context.Context, customerID string, req ledger.ExtendRequest) (*ledger.ExtendReply, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var out ledger.ExtendReply
	return &out, c.call(ctx, events.OpExtend, customerID, &req, &out)
}

// Extend pushes a reservation's deadline to now + ttl.
func (c *Client) Extend(ctx context.Context, customerID, reservationID string, ttl time.Duration) (*ledger.ExtendReply, error) {
	return c.ExtendWith(ctx, customerID, ledger.ExtendRequest{ReservationID: reservationID, TTL: ttl.String()})
}

// Status returns the customer's position.
func (c *Client) Status(ctx context.Context, customerID string) (*ledger.StatusReply, error) {
	var out ledger.StatusReply
	return &out, c.call(ctx, events.OpStatus, customerID, &ledger.StatusRequest{}, &out)
}

// SetBudget sets or changes the customer's budget (admin).
func (c *Client) SetBudget(ctx context.Context, customerID string, req ledger.BudgetRequest) (*ledger.StatusReply, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var out ledger.StatusReply
	return &out, c.call(ctx, events.OpBudget, customerID, &req, &out)
}

// TopUp adds units to the customer's current period (admin).
func (c *Client) TopUp(ctx context.Context, customerID string, req ledger.TopUpRequest) (*ledger.StatusReply, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var out ledger.StatusReply
	return &out, c.call(ctx, events.OpTopUp, customerID, &req, &out)
}

// Grant grants credits to the customer (admin): units used after the
// period's allowance, kept across periods until used up or expired. Use it
// for credits a customer buys; TopUp raises this period only.
func (c *Client) Grant(ctx context.Context, customerID string, req ledger.GrantRequest) (*ledger.GrantReply, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var out ledger.GrantReply
	return &out, c.call(ctx, events.OpGrant, customerID, &req, &out)
}

// call sends one request, retrying unavailable replies, timeouts and
// missing responders (a writer restarting) with the same body, so the same
// idempotency key, until c.attempts, CallElapsedMax or ctx ends.
func (c *Client) call(ctx context.Context, op events.Op, customerID string, req, out any) error {
	if err := events.ValidateCustomerID(customerID); err != nil {
		return ledger.Errorf(ledger.CodeInvalidArgument, "%v", err)
	}
	var body []byte
	var err error
	if cmd, ok := req.(ledger.Command); ok {
		body, err = ledger.MarshalRequest(cmd)
	} else {
		body, err = json.Marshal(req)
	}
	if err != nil {
		return fmt.Errorf("agentbill: encode %s request: %w", op, err)
	}
	subject := events.RequestSubject(op, customerID)
	return retry.Do(ctx, c.retryPolicy(), func(ctx context.Context) error {
		return c.once(ctx, subject, body, out)
	})
}

// retryPolicy is a call's: c.attempts attempts within CallElapsedMax,
// retrying only unavailable.
func (c *Client) retryPolicy() retry.Policy {
	return retry.Policy{Attempts: c.attempts, Elapsed: CallElapsedMax,
		First: BackoffMin, Max: BackoffMax, Retryable: retryable}
}

func (c *Client) once(ctx context.Context, subject string, body []byte, out any) error {
	msg, err := c.request(ctx, subject, body, c.timeout)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if denied := c.denied(subject); denied != nil {
				return denied
			}
			return ledger.Errorf(ledger.CodeUnavailable, "no answer from AgentBill on %s: %v", subject, err)
		}
		return err
	}
	return decodeReply(msg.Data, out)
}

// denied returns a permission_denied error if the connection's last error
// is a permission violation for subject or for the connection's reply
// subscription (replies.go): NATS reports those asynchronously, so the
// request itself only times out, and retrying cannot help. Any other violation is not
// this request's: LastError keeps it until a reconnect, and the
// connection may be shared (the gateway's key store, log follower and
// MCP server use it too), so one refused subscription elsewhere must not
// turn every later timeout (a failover) into a denial.
func (c *Client) denied(subject string) error {
	err := c.nc.LastError()
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) {
		return nil
	}
	msg := err.Error()
	reply := c.replies.subject()
	if strings.Contains(msg, strconv.Quote(subject)) || reply != "" && strings.Contains(msg, "Subscription to "+strconv.Quote(reply)) {
		return ledger.Errorf(ledger.CodePermissionDenied, "%s (request on %s)", msg, subject)
	}
	return nil
}

// decodeReply decodes a reply, turning {"error": ...} into *ledger.Error.
// A reply that cannot hold an "error" key (mayHoldError) is decoded once,
// straight into out: that is every answer but an error, and it halves the
// client's JSON work per call (the bench's 64 clients spent 7% of the
// process's CPU here, most of it in the second decode).
func decodeReply(data []byte, out any) error {
	if !mayHoldError(data) {
		if decodeReplyFast(data, out) {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("agentbill: malformed reply: %w", err)
		}
		return nil
	}
	var er struct {
		Error *ledger.Error `json:"error"`
	}
	if err := json.Unmarshal(data, &er); err != nil {
		return fmt.Errorf("agentbill: malformed reply: %w", err)
	}
	if er.Error != nil {
		return er.Error
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("agentbill: malformed reply: %w", err)
	}
	return nil
}

// mayHoldError reports whether data might have a key that encoding/json
// would decode into the "error" field: it has `error"` in any case (keys
// match case-insensitively), or an escape (a key could be spelled with
// \u escapes). False is certain; true sends the reply the two-decode way.
func mayHoldError(data []byte) bool {
	const key = `error"`
	if bytes.IndexByte(data, '\\') >= 0 {
		return true
	}
	for i := 0; i+len(key) <= len(data); i++ {
		if (data[i]|0x20) == 'e' && asciiFoldEqual(data[i:i+len(key)], key) {
			return true
		}
	}
	return false
}

// asciiFoldEqual reports whether b equals s (lower case) ignoring ASCII case.
func asciiFoldEqual(b []byte, s string) bool {
	for i := range len(s) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func retryable(err error) bool {
	return ledger.ErrorCode(err) == ledger.CodeUnavailable
}
