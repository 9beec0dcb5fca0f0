package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/prices"
)

// Command is one request addressed to the ledger: one of the *Request types
// below, decoded by the transport. The ledger validates it (Decide calls
// Validate; so does the writer when it decodes a NATS request): adapters
// leave the request's rules to the ledger.
type Command interface {
	// Op is the operation, as in the request subject.
	Op() events.Op
	// Customer is the customer the command is for.
	Customer() string
	// Validate first fills in what the ledger's rules give a request that
	// leaves it out (see the request types: a preflight's estimate, a
	// failed record's units), then reports the first problem with the
	// request, as an invalid_argument *Error. Every transport gets the
	// same defaults because they are applied here and nowhere else.
	Validate() error
	key() string
}

// EstimatedUnitsDefault is a preflight's estimate when the request has none
// (docs/PROTOCOL.md: estimated_units defaults to 1).
var EstimatedUnitsDefault = events.NewUnits(1, 0)

// PreflightRequest asks to reserve estimated units for an agent run. With
// no EstimatedUnits it reserves EstimatedUnitsDefault.
type PreflightRequest struct {
	CustomerID     string          `json:"customer_id,omitempty"`
	AgentID        string          `json:"agent_id"`
	EstimatedUnits *events.Units   `json:"estimated_units"`
	TaskRef        string          `json:"task_ref,omitempty"`
	TaskCeiling    *events.Units   `json:"task_ceiling,omitempty"`
	Ceiling        *events.Units   `json:"ceiling,omitempty"`
	TTL            string          `json:"ttl,omitempty"` // Go duration; default 15m
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	// Scope places the run in the customer's organisation, e.g.
	// {"team": "research", "user": "alice"}: every scope limit of a value
	// it names must fit too.
	Scope map[string]string `json:"scope,omitempty"`
	// MinUnits asks for a partial approval: if EstimatedUnits does not fit
	// but at least MinUnits does, hold what fits.
	MinUnits *events.Units `json:"min_units,omitempty"`
	// UsageEstimate asks the ledger to price the estimate from the
	// customer's price list: the model, its prompt and its output cap.
	// EstimatedUnits beside it is the fallback for a model the list does
	// not price.
	UsageEstimate *prices.Estimate `json:"usage_estimate,omitempty"`
}

// RecordRequest reports actual usage, settling a reservation. A failed run
// (Success false) releases the reservation and charges nothing, so it
// needs no Units: without them it is normalised to 0.
type RecordRequest struct {
	CustomerID     string          `json:"customer_id,omitempty"`
	AgentID        string          `json:"agent_id"`
	Units          *events.Units   `json:"units"`
	ReservationID  string          `json:"reservation_id,omitempty"`
	Success        *bool           `json:"success,omitempty"` // default true
	TaskRef        string          `json:"task_ref,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	// Scope is the run's scope when the record settles no open hold (a
	// hold's scope is its preflight's).
	Scope map[string]string `json:"scope,omitempty"`
	// Usage is the model usage to charge, priced from the customer's
	// price list. Units beside it are charged only if it cannot be priced.
	Usage *events.Usage `json:"usage,omitempty"`
}

// ReleaseRequest gives a reservation's hold back without charge.
type ReleaseRequest struct {
	CustomerID     string `json:"customer_id,omitempty"`
	ReservationID  string `json:"reservation_id"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// ExtendRequest pushes a reservation's deadline to now + TTL.
type ExtendRequest struct {
	CustomerID     string `json:"customer_id,omitempty"`
	ReservationID  string `json:"reservation_id"`
	TTL            string `json:"ttl"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// StatusRequest asks for a customer's position. It changes nothing.
type StatusRequest struct {
	CustomerID string `json:"customer_id,omitempty"`
}

// BudgetRequest sets or changes a customer's budget (admin).
type BudgetRequest struct {
	CustomerID     string                  `json:"customer_id,omitempty"`
	Limit          *events.Units           `json:"limit"`
	Period         string                  `json:"period"`
	Thresholds     []events.Units          `json:"thresholds,omitempty"`
	UpgradeURL     string                  `json:"upgrade_url,omitempty"`
	AgentLimits    map[string]events.Units `json:"agent_limits,omitempty"`
	IdempotencyKey string                  `json:"idempotency_key,omitempty"`
	// Rollover is what of a period's unused allowance becomes a grant in
	// the next: "none" (the default), "all", or a decimal cap.
	Rollover Rollover `json:"rollover,omitempty"`
	// Overdraft lets approvals go this many units below zero (a soft limit).
	Overdraft *events.Units `json:"overdraft,omitempty"`
	// ScopeLimits caps scope values within the customer (period: the
	// budget's when left out).
	ScopeLimits []ScopeLimitRequest `json:"scope_limits,omitempty"`
	// MaxRuns caps the customer's open reservations, MaxRunsPerAgent
	// each agent's (0 or absent: no cap).
	MaxRuns         int `json:"max_concurrent_runs,omitempty"`
	MaxRunsPerAgent int `json:"max_concurrent_runs_per_agent,omitempty"`
	// PriceList names the price list the customer's usage is priced
	// with ("" or absent: the list named default). It must be set.
	PriceList string `json:"price_list,omitempty"`
	// RateLimit is the customer's own preflight rate; nil: the server's
	// default (ValidateRateLimit).
	RateLimit *events.RateLimit `json:"rate_limit,omitempty"`
}

// ScopeLimitRequest is one scope limit as a budget request states it:
// Limit is required (a missing limit is not 0), Period defaults to the
// budget's.
type ScopeLimitRequest struct {
	Dimension string        `json:"dimension"`
	Value     string        `json:"value"`
	Limit     *events.Units `json:"limit"`
	Period    string        `json:"period,omitempty"`
}

// Rollover is a budget's rollover policy as a request states it: "none",
// "all", or a decimal cap, which may be a JSON number or string.
// Validate makes it canonical: "" (none), "all", or the cap's canonical
// decimal.
type Rollover string

// UnmarshalJSON takes a JSON string or number.
func (r *Rollover) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = Rollover(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("rollover must be \"none\", \"all\" or a decimal")
	}
	*r = Rollover(n.String())
	return nil
}

func (r *Rollover) normalize() error {
	switch *r {
	case "", "none":
		*r = ""
		return nil
	case RolloverAll:
		return nil
	}
	u, err := events.ParseUnits(string(*r))
	if err != nil {
		return invalid("rollover %q is not \"none\", \"all\" or a decimal cap: %v", truncate(string(*r), 40), err)
	}
	*r = Rollover(u.String())
	return nil
}

// GrantRequest grants credits to a customer (admin). They are used after
// the period's allowance and survive period boundaries until used up or
// expired.
type GrantRequest struct {
	CustomerID     string        `json:"customer_id,omitempty"`
	Units          *events.Units `json:"units"`
	ExpiresAt      *time.Time    `json:"expires_at,omitempty"`   // none: never
	EffectiveAt    *time.Time    `json:"effective_at,omitempty"` // none: now
	Priority       *int          `json:"priority,omitempty"`     // lower first; GrantPriorityDefault
	Source         string        `json:"source,omitempty"`       // events.SourcePurchase when left out
	Note           string        `json:"note,omitempty"`
	IdempotencyKey string        `json:"idempotency_key,omitempty"`
}

// TopUpRequest adds units to the customer's current period (admin).
type TopUpRequest struct {
	CustomerID     string        `json:"customer_id,omitempty"`
	Units          *events.Units `json:"units"`
	IdempotencyKey string        `json:"idempotency_key,omitempty"`
	Note           string        `json:"note,omitempty"`
}

func (r *PreflightRequest) Op() events.Op { return events.OpPreflight }
func (r *RecordRequest) Op() events.Op    { return events.OpRecord }
func (r *ReleaseRequest) Op() events.Op   { return events.OpRelease }
func (r *ExtendRequest) Op() events.Op    { return events.OpExtend }
func (r *StatusRequest) Op() events.Op    { return events.OpStatus }
func (r *BudgetRequest) Op() events.Op    { return events.OpBudget }
func (r *TopUpRequest) Op() events.Op     { return events.OpTopUp }
func (r *GrantRequest) Op() events.Op     { return events.OpGrant }

func (r *PreflightRequest) Customer() string { return r.CustomerID }
func (r *RecordRequest) Customer() string    { return r.CustomerID }
func (r *ReleaseRequest) Customer() string   { return r.CustomerID }
func (r *ExtendRequest) Customer() string    { return r.CustomerID }
func (r *StatusRequest) Customer() string    { return r.CustomerID }
func (r *BudgetRequest) Customer() string    { return r.CustomerID }
func (r *TopUpRequest) Customer() string     { return r.CustomerID }
func (r *GrantRequest) Customer() string     { return r.CustomerID }

func (r *PreflightRequest) key() string { return r.IdempotencyKey }
func (r *RecordRequest) key() string    { return r.IdempotencyKey }
func (r *ReleaseRequest) key() string   { return r.IdempotencyKey }
func (r *ExtendRequest) key() string    { return r.IdempotencyKey }
func (r *StatusRequest) key() string    { return "" }
func (r *BudgetRequest) key() string    { return r.IdempotencyKey }
func (r *TopUpRequest) key() string     { return r.IdempotencyKey }
func (r *GrantRequest) key() string     { return r.IdempotencyKey }

// NewCommand returns an empty request for op, to decode into, or nil for an
// unknown op.
func NewCommand(op events.Op) Command {
	switch op {
	case events.OpPreflight:
		return &PreflightRequest{}
	case events.OpRecord:
		return &RecordRequest{}
	case events.OpRelease:
		return &ReleaseRequest{}
	case events.OpExtend:
		return &ExtendRequest{}
	case events.OpStatus:
		return &StatusRequest{}
	case events.OpBudget:
		return &BudgetRequest{}
	case events.OpTopUp:
		return &TopUpRequest{}
	case events.OpGrant:
		return &GrantRequest{}
	}
	return nil
}

func invalid(format string, args ...any) *Error {
	return Errorf(CodeInvalidArgument, format, args...)
}

func checkID(what, id string, maxBytes int, required bool) error {
	if id == "" && !required {
		return nil
	}
	if err := events.ValidateID(what, id, maxBytes); err != nil {
		return invalid("%v", err)
	}
	return nil
}

func checkAmount(what string, u *events.Units, required, positive bool) error {
	if u == nil {
		if required {
			return invalid("%s is required", what)
		}
		return nil
	}
	if err := u.CheckRequestBound(); err != nil {
		return invalid("%s: %v", what, err)
	}
	if positive && u.Sign() <= 0 {
		return invalid("%s must be greater than 0", what)
	}
	return nil
}

// ParseTTL parses a reservation TTL ("" is the default) within bounds.
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return TTLDefault, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalid("ttl %q is not a Go duration (like 90s or 15m)", truncate(s, 32))
	}
	if d < TTLMin || d > TTLMax {
		return 0, invalid("ttl %s is outside %s..%s", d, TTLMin, TTLMax)
	}
	return d, nil
}

func checkMetadata(m json.RawMessage) error {
	if len(m) == 0 {
		return nil
	}
	if len(m) > MetadataBytesMax {
		return invalid("metadata is %d bytes, more than %d", len(m), MetadataBytesMax)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m, &obj); err != nil || obj == nil {
		return invalid("metadata must be a JSON object")
	}
	if len(obj) > MetadataKeysMax {
		return invalid("metadata has %d keys, more than %d", len(obj), MetadataKeysMax)
	}
	return nil
}

// normalize fills in the estimate a preflight leaves out.
func (r *PreflightRequest) normalize() {
	if r.EstimatedUnits == nil && r.UsageEstimate == nil {
		est := EstimatedUnitsDefault
		r.EstimatedUnits = &est
	}
}

// normalize gives a failed run without units zero units: it releases,
// and units do not matter.
func (r *RecordRequest) normalize() {
	if r.Units == nil && r.Success != nil && !*r.Success {
		zero := events.Zero
		r.Units = &zero
	}
}

func (r *PreflightRequest) Validate() error {
	r.normalize()
	return firstErr(
		checkID("agent_id", r.AgentID, AgentIDBytesMax, true),
		checkAmount("estimated_units", r.EstimatedUnits, r.UsageEstimate == nil, true),
		checkID("task_ref", r.TaskRef, TaskRefBytesMax, false),
		checkAmount("task_ceiling", r.TaskCeiling, false, false),
		checkAmount("ceiling", r.Ceiling, false, false),
		func() error { _, err := ParseTTL(r.TTL); return err }(),
		checkID("idempotency_key", r.IdempotencyKey, IdempotencyKeyBytesMax, false),
		checkMetadata(r.Metadata),
		func() error {
			if r.TaskCeiling != nil && r.TaskRef == "" {
				return invalid("task_ceiling needs a task_ref")
			}
			return nil
		}(),
		validateScope(r.Scope),
		checkAmount("min_units", r.MinUnits, false, true),
		checkEstimate(r.UsageEstimate),
		func() error {
			if r.MinUnits != nil && r.EstimatedUnits != nil && r.MinUnits.Cmp(*r.EstimatedUnits) > 0 {
				return invalid("min_units %s is more than estimated_units %s", *r.MinUnits, *r.EstimatedUnits)
			}
			return nil
		}(),
	)
}

func (r *RecordRequest) Validate() error {
	r.normalize()
	return firstErr(
		checkID("agent_id", r.AgentID, AgentIDBytesMax, true),
		checkAmount("units", r.Units, r.Usage == nil, false),
		checkUsage(r.Usage),
		checkID("reservation_id", r.ReservationID, ReservationIDBytesMax, false),
		checkID("task_ref", r.TaskRef, TaskRefBytesMax, false),
		checkID("idempotency_key", r.IdempotencyKey, IdempotencyKeyBytesMax, false),
		checkMetadata(r.Metadata),
		validateScope(r.Scope),
	)
}

func (r *ReleaseRequest) Validate() error {
	return firstErr(
		checkID("reservation_id", r.ReservationID, ReservationIDBytesMax, true),
		checkID("idempotency_key", r.IdempotencyKey, IdempotencyKeyBytesMax, false),
	)
}

func (r *ExtendRequest) Validate() error {
	return firstErr(
		checkID("reservation_id", r.ReservationID, ReservationIDBytesMax, true),
		func() error {
			if r.TTL == "" {
				return invalid("ttl is required")
			}
			_, err := ParseTTL(r.TTL)
			return err
		}(),
		checkID("idempotency_key", r.IdempotencyKey, IdempotencyKeyBytesMax, false),
	)
}

func (r *StatusRequest) Validate() error { return nil }

func (r *BudgetRequest) Validate() error {
	errs := []error{
		checkAmount("limit", r.Limit, true, false),
		func() error { _, err := ParsePeriod(r.Period); return err }(),
		checkID("idempotency_key", r.IdempotencyKey, IdempotencyKeyBytesMax, false),
		checkUpgradeURL(r.UpgradeURL),
		checkPriceListName(r.PriceList),
	}
	if len(r.Thresholds) > ThresholdsMax {
		errs = append(errs, invalid("%d thresholds, more than %d", len(r.Thresholds), ThresholdsMax))
	}
	one := events.NewUnits(1, 0)
	for i, t := range r.Thresholds {
		if t.Sign() <= 0 || t.Cmp(one) > 0 {
			errs = append(errs, invalid("threshold %s is not a fraction in (0, 1]", t))
		}
		for _, u := range r.Thresholds[:i] {
			if u.Cmp(t) == 0 {
				errs = append(errs, invalid("threshold %s is listed twice", t))
			}
		}
	}
	if len(r.AgentLimits) > AgentLimitsMax {
		errs = append(errs, invalid("%d agent limits, more than %d", len(r.AgentLimits), AgentLimitsMax))
	}
	for a, l := range r.AgentLimits {
		errs = append(errs, checkID("agent_limits key", a, AgentIDBytesMax, true))
		errs = append(errs, checkAmount("agent limit of "+a, &l, true, false))
	}
	errs = append(errs, r.Rollover.normalize(), checkAmount("overdraft", r.Overdraft, false, false))
	if r.Rollover != "" && r.Period == string(PeriodNone) {
		errs = append(errs, invalid("rollover needs a period: a budget with period none never rolls over"))
	}
	errs = append(errs, validateScopeLimits(r.ScopeLimits)...)
	for i, n := range []int{r.MaxRuns, r.MaxRunsPerAgent} {
		if n < 0 || n > ConcurrentRunsMax {
			errs = append(errs, invalid("%s %d is outside 0..%d",
				[]string{"max_concurrent_runs", "max_concurrent_runs_per_agent"}[i], n, ConcurrentRunsMax))
		}
	}
	errs = append(errs, ValidateRateLimit(r.RateLimit))
	return firstErr(errs...)
}

func checkUpgradeURL(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > UpgradeURLBytesMax {
		return invalid("upgrade_url is longer than %d bytes", UpgradeURLBytesMax)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid("upgrade_url %q is not an http(s) URL", truncate(s, 64))
	}
	return nil
}

func (r *TopUpRequest) Validate() error {
	return firstErr(
		checkAmount("units", r.Units, true, true),
		checkID("idempotency_key", r.IdempotencyKey, IdempotencyKeyBytesMax, false),
		func() error {
			if len(r.Note) > NoteBytesMax {
				return invalid("note is longer than %d bytes", NoteBytesMax)
			}
			return checkID("note", r.Note, NoteBytesMax, false)
		}(),
	)
}

// normalize writes the grant's times in UTC, so a retry that spells the
// same instants in another offset is the same request.
func (r *GrantRequest) normalize() {
	for _, t := range []*time.Time{r.ExpiresAt, r.EffectiveAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
}

func (r *GrantRequest) Validate() error {
	r.normalize()
	errs := []error{
		checkAmount("units", r.Units, true, true),
		checkID("idempotency_key", r.IdempotencyKey, IdempotencyKeyBytesMax, false),
		checkID("note", r.Note, NoteBytesMax, false),
		checkID("source", r.Source, GrantSourceBytesMax, false),
	}
	if r.Source == events.SourceRollover {
		errs = append(errs, invalid("source %q is the ledger's own, for unused allowance it carries over", r.Source))
	}
	if r.Priority != nil && (*r.Priority < 0 || *r.Priority > GrantPriorityMax) {
		errs = append(errs, invalid("priority %d is outside 0..%d", *r.Priority, GrantPriorityMax))
	}
	if r.ExpiresAt != nil && r.EffectiveAt != nil && !r.ExpiresAt.After(*r.EffectiveAt) {
		errs = append(errs, invalid("expires_at %s is not after effective_at %s",
			r.ExpiresAt.UTC().Format(time.RFC3339), r.EffectiveAt.UTC().Format(time.RFC3339)))
	}
	for i, t := range []*time.Time{r.ExpiresAt, r.EffectiveAt} {
		if t != nil && (t.Year() < GrantYearMin || t.Year() > GrantYearMax) {
			errs = append(errs, invalid("%s %s is outside the years %d..%d",
				[]string{"expires_at", "effective_at"}[i], t.Format(time.RFC3339), GrantYearMin, GrantYearMax))
		}
	}
	return firstErr(errs...)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// requestHash is the hash stored with an idempotency key: SHA-256 (first 16
// bytes, hex) over the op and the request's canonical JSON (fields in a fixed
// order, amounts canonical, metadata compacted), so a retry matches however
// its JSON was spaced, and any change of meaning does not. It writes into
// the state's scratch buffer (decisions are single-threaded).
func (s *State) requestHash(c Command) string {
	buf := append(s.hashBuf[:0], c.Op()...)
	buf = append(buf, '\n')
	// json.Marshal of these structs is deterministic: declared field order,
	// sorted map keys, canonical Units, compacted RawMessage. The hot
	// requests write the same bytes without it (canonical.go).
	buf, ok := appendCanonical(buf, c)
	if !ok {
		b, err := json.Marshal(c)
		if err != nil {
			panic(fmt.Sprintf("agentbill: cannot encode a validated request: %v", err))
		}
		buf = append(buf, b...)
	}
	if cap(buf) <= requestHashBuf {
		s.hashBuf = buf[:0] // keep it unless one huge request grew it
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16])
}

// normalizeCustomer checks the body's optional customer_id against the
// subject's and fills it in.
func normalizeCustomer(bodyID *string, subjectID string) error {
	if *bodyID != "" && *bodyID != subjectID {
		return invalid("customer_id %q in the body disagrees with the subject's customer %q",
			truncate(*bodyID, 64), truncate(subjectID, 64))
	}
	*bodyID = subjectID
	return nil
}

// BindCustomer sets the command's customer from the request subject, and
// refuses a body whose customer_id says otherwise.
func BindCustomer(c Command, subjectID string) error {
	switch r := c.(type) {
	case *PreflightRequest:
		return normalizeCustomer(&r.CustomerID, subjectID)
	case *RecordRequest:
		return normalizeCustomer(&r.CustomerID, subjectID)
	case *ReleaseRequest:
		return normalizeCustomer(&r.CustomerID, subjectID)
	case *ExtendRequest:
		return normalizeCustomer(&r.CustomerID, subjectID)
	case *StatusRequest:
		return normalizeCustomer(&r.CustomerID, subjectID)
	case *BudgetRequest:
		return normalizeCustomer(&r.CustomerID, subjectID)
	case *TopUpRequest:
		return normalizeCustomer(&r.CustomerID, subjectID)
	case *GrantRequest:
		return normalizeCustomer(&r.CustomerID, subjectID)
	}
	return invalid("unknown command %T", c)
}

// checkEstimate validates a usage_estimate, if any.
func checkEstimate(e *prices.Estimate) error {
	if e == nil {
		return nil
	}
	if err := e.Validate(); err != nil {
		return invalid("usage_estimate: %v", err)
	}
	return nil
}

// checkUsage validates a record's usage, if any.
func checkUsage(u *events.Usage) error {
	if u == nil {
		return nil
	}
	if err := u.Validate(); err != nil {
		return invalid("usage: %v", err)
	}
	return nil
}

// checkPriceListName validates a budget's price_list: "" or a list name
// within the bounds a list's own name has.
func checkPriceListName(name string) error {
	if name == "" {
		return nil
	}
	if len(name) > prices.NameLenMax || strings.TrimSpace(name) == "" ||
		strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return invalid("price_list %q is not a list name (1 to %d bytes, no control characters)", truncate(name, 64), prices.NameLenMax)
	}
	return nil
}
