package events

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Subject layout (docs/PROTOCOL.md, "Subjects").
const (
	// StreamName is the one JetStream stream that is the ledger.
	StreamName = "AGENTBILL"
	// EventSubjectPrefix prefixes the subjects on which committed events
	// are announced one by one (core NATS): agentbill.events.<ctok>.<type>.
	EventSubjectPrefix = "agentbill.events."
	// RequestPrefix prefixes agent operations: agentbill.v1.<op>.<ctok>.
	RequestPrefix = "agentbill.v1."
	// AdminPrefix prefixes admin operations: agentbill.admin.v1.<op>.<ctok>.
	AdminPrefix = "agentbill.admin.v1."
	// RequestWildcard and AdminWildcard are what the writer subscribes to.
	RequestWildcard = "agentbill.v1.*.*"
	AdminWildcard   = "agentbill.admin.v1.*.*"
	// PricesSubject sets a price list, PriceListsSubject shows them:
	// admin requests every writer (each partition) answers.
	PricesSubject     = "agentbill.admin.v1.prices"
	PriceListsSubject = "agentbill.admin.v1.price_lists"
)

// ConsumerInactiveMax is how long the server keeps the consumer of a
// reader of the streams (the ordered consumers of a replay, a standby's
// tail, the audit's chain walk, a watch) once the reader stops pulling.
// nats.go's default, five minutes, left a consumer behind that long after
// every replay. Twice a pull request's wait (nats.go's default expiry,
// 30 s), so a reader that is only slow keeps its consumer; one that loses
// it anyway goes on, since an ordered consumer recreates itself where it
// stopped.
const ConsumerInactiveMax = 60 * time.Second

// Op names an operation in a request subject.
type Op string

// Agent and admin operations.
const (
	OpPreflight Op = "preflight"
	OpRecord    Op = "record"
	OpRelease   Op = "release"
	OpExtend    Op = "extend"
	OpStatus    Op = "status"
	OpBudget    Op = "budget"
	OpTopUp     Op = "topup"
	OpGrant     Op = "grant"
	// OpPrices and OpPriceLists set and show price lists. They concern no
	// customer, so their subjects (PricesSubject, PriceListsSubject) have
	// no customer token and reach every partition.
	OpPrices     Op = "prices"
	OpPriceLists Op = "price_lists"
)

// IsAdmin reports whether op is served under AdminPrefix.
func (op Op) IsAdmin() bool { return op == OpBudget || op == OpTopUp || op == OpGrant }

// RequestSubject returns the subject for op on a customer.
func RequestSubject(op Op, customerID string) string {
	if op.IsAdmin() {
		return AdminPrefix + string(op) + "." + Token(customerID)
	}
	return RequestPrefix + string(op) + "." + Token(customerID)
}

// EventSubject returns the subject an event of type t for a customer is
// announced on after it is committed.
func EventSubject(customerID string, t Type) string {
	return EventSubjectPrefix + Token(customerID) + "." + string(t)
}

// EventFilter returns the subject filter for events of type t (every type
// if empty) of one customer (every customer if empty).
func EventFilter(customerID string, t Type) string {
	c, ty := "*", "*"
	if customerID != "" {
		c = Token(customerID)
	}
	if t != "" {
		ty = string(t)
	}
	return EventSubjectPrefix + c + "." + ty
}

// ParseRequestSubject splits a request subject into its operation and the
// raw customer token. It does not decode the token.
func ParseRequestSubject(subject string) (op Op, token string, admin bool, err error) {
	rest, admin := strings.CutPrefix(subject, AdminPrefix)
	if !admin {
		var ok bool
		rest, ok = strings.CutPrefix(subject, RequestPrefix)
		if !ok {
			return "", "", false, fmt.Errorf("%w: subject %q is not a request subject", ErrInvalidID, truncate(subject))
		}
	}
	o, tok, ok := strings.Cut(rest, ".")
	if !ok || o == "" || tok == "" || strings.Contains(tok, ".") {
		return "", "", false, fmt.Errorf("%w: subject %q is not <op>.<customer>", ErrInvalidID, truncate(subject))
	}
	return Op(o), tok, admin, nil
}

// Partitions: with `serve --partitions N`, NATS maps each request subject
// to its owner's (nats.conf):
//
//	agentbill.v1.<op>.<ctok>       -> agentbill.p.<I>.v1.<op>.<ctok>
//	agentbill.admin.v1.<op>.<ctok> -> agentbill.p.<I>.admin.v1.<op>.<ctok>
//
// where I = PartitionOf(<ctok>, N), and partition I's writer appends to
// LogSubject(strconv.Itoa(I)).
const (
	// PartitionPrefix prefixes partitioned request subjects.
	PartitionPrefix = "agentbill.p."
	// PartitionsMax bounds N: the subject mapping's partition count.
	PartitionsMax = 1024
)

// PartitionOf returns the partition that owns a customer token: FNV-1a
// 32-bit over the token's bytes, mod n, exactly as nats-server's
// {{partition(n, 2)}} subject mapping computes it.
func PartitionOf(token string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(token))
	return int(h.Sum32() % uint32(n))
}

// PartitionWildcards returns what partition i's writer subscribes to.
func PartitionWildcards(i int) []string {
	p := PartitionPrefix + strconv.Itoa(i) + "."
	return []string{p + "v1.*.*", p + "admin.v1.*.*"}
}

// UnmapPartition returns the request subject a partitioned subject was
// mapped from (agentbill.p.<I>.v1... -> agentbill.v1...); any other
// subject unchanged.
func UnmapPartition(subject string) string {
	rest, ok := strings.CutPrefix(subject, PartitionPrefix)
	if !ok {
		return subject
	}
	if _, rest, ok = strings.Cut(rest, "."); !ok {
		return subject
	}
	return "agentbill." + rest
}

// The alert stream: every announced event (alerts: budget_exhausted,
// budget_restored, threshold_crossed, denied) is also stored, after its
// commit, in the JetStream stream AlertStreamName on its event subject,
// with Nats-Msg-Id = the event's ID and these headers (docs/PROTOCOL.md).
const (
	// AlertStreamName is the alert stream.
	AlertStreamName = "AGENTBILL_EVENTS"
	// AlertLogSeqHeader names the log sequence of an alert's commit.
	AlertLogSeqHeader = "Agentbill-Log-Seq"
	// AlertWriterHeader names the writer (partition) that published it.
	AlertWriterHeader = "Agentbill-Writer"
)
