package ledger

import "time"

// Every bound the ledger enforces. Requests beyond them are refused with
// invalid_argument; state never grows past them.
const (
	// AgentIDBytesMax, TaskRefBytesMax, IdempotencyKeyBytesMax,
	// ReservationIDBytesMax bound identifiers in requests.
	AgentIDBytesMax        = 128
	TaskRefBytesMax        = 128
	IdempotencyKeyBytesMax = 128
	ReservationIDBytesMax  = 64
	// NoteBytesMax bounds a top-up note; UpgradeURLBytesMax an upgrade URL.
	NoteBytesMax       = 512
	UpgradeURLBytesMax = 2048
	// MetadataBytesMax and MetadataKeysMax bound a request's metadata object.
	MetadataBytesMax = 4096
	MetadataKeysMax  = 32
	// ThresholdsMax bounds alert fractions per customer (a bitmask holds them).
	ThresholdsMax = 16
	// AgentLimitsMax bounds per-agent limits in one budget.
	AgentLimitsMax = 256
	// AgentsPerCustomerMax bounds the agents tracked per customer per period;
	// it also keeps a status reply (which lists them) well under NATS's
	// 1 MiB max_payload: at most ~350 bytes an agent.
	AgentsPerCustomerMax = 1024
	// AgentIDsInternedMax bounds the agent IDs the ledger keeps one copy
	// of (State.internAgentID); IDs past it are kept as they come.
	AgentIDsInternedMax = 4096
	// TasksPerCustomerMax bounds the tasks tracked per customer per period;
	// the oldest task with nothing held is forgotten to make room.
	TasksPerCustomerMax = 1024
	// OpenReservationsPerCustomerMax bounds holds per customer.
	OpenReservationsPerCustomerMax = 10_000
	// TTLDefault, TTLMin and TTLMax bound a reservation's lifetime; long
	// runs extend.
	TTLDefault = 15 * time.Minute
	TTLMin     = time.Second
	TTLMax     = 24 * time.Hour
	// IdempotencyWindow is how long keys (and closed reservation IDs) are
	// remembered, measured in event time, so replay forgets exactly what the
	// live writer forgot.
	IdempotencyWindow = 24 * time.Hour
	// IdempotencyKeysMax bounds remembered keys; past it the oldest are
	// forgotten before their window ends (see docs/PROTOCOL.md: "Idempotency").
	IdempotencyKeysMax = 20_000_000
	// ClosedReservationsMax bounds remembered closed reservation IDs.
	ClosedReservationsMax = 5_000_000
	// ExpiriesPerCommandMax bounds the overdue holds of one customer that a
	// command expires before it is decided.
	ExpiriesPerCommandMax = 16
	// GrantExpiriesPerCommandMax bounds the expired grants of one customer
	// that a command records before it is decided; the sweep does the rest.
	GrantExpiriesPerCommandMax = 16
	// GrantsPerCustomerMax bounds a customer's open grants: draw-down walks
	// them on every charge, and a status reply lists them (~250 bytes each).
	GrantsPerCustomerMax = 256
	// GrantsHeldMax bounds the grants a customer's state can hold, which
	// is what a snapshot reader accepts. A grant request is refused at
	// GrantsPerCustomerMax grants not yet expired, but at a period
	// boundary a rollover grant is added (before the command's own
	// grant) while the rollover grant of the period that ended is still
	// held until its grant_expired is applied: two beyond the maximum.
	GrantsHeldMax = GrantsPerCustomerMax + 2
	// GrantSourceBytesMax bounds a grant's source label.
	GrantSourceBytesMax = 32
	// GrantPriorityMax bounds a grant's priority (0..GrantPriorityMax);
	// GrantPriorityDefault is a grant's priority when the request has none.
	GrantPriorityMax     = 1_000_000
	GrantPriorityDefault = 100
	// GrantYearMin and GrantYearMax bound a grant's times: a year outside
	// them is a typo, and RFC 3339 cannot write years past 9999.
	GrantYearMin = 2000
	GrantYearMax = 9999
	// ScopeDimensionsMax bounds the dimensions of a request's scope: every
	// one is checked on every preflight.
	ScopeDimensionsMax = 4
	// ScopeDimensionBytesMax bounds a dimension's name
	// (^[a-z][a-z0-9_]{0,31}$).
	ScopeDimensionBytesMax = 32
	// ScopeLimitsMax bounds a budget's scope limits (~200 bytes each in a
	// status reply, so the reply stays well under NATS's 1 MiB max_payload).
	ScopeLimitsMax = 1024
	// ConcurrentRunsMax bounds max_concurrent_runs: no customer can hold
	// more open reservations than OpenReservationsPerCustomerMax anyway.
	ConcurrentRunsMax = OpenReservationsPerCustomerMax
	// EventsPerCommandMax bounds the events one command can produce:
	// expiries of holds and grants, an implicit budget, a rollover grant,
	// the decision, budget_restored, thresholds, exhaustion, overdraft.
	EventsPerCommandMax = ExpiriesPerCommandMax + GrantExpiriesPerCommandMax + 1 + 1 + 1 + 1 + ThresholdsMax + 1 + 1
)
