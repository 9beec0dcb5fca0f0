package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
)

// DecodeCommitEncodingJSON is DecodeCommit without the fast decoder, for the
// benchmarks of package events_test.
var DecodeCommitEncodingJSON = decodeCommitSlow

// The fast decoder must agree with encoding/json (decodeCommitSlow,
// decodeSlow) on every input: the same values where it decodes, and a
// hand-over (errNotHandled) wherever it is not certain. These tests check
// that on random canonical commits, on hand-made inputs it must hand over,
// and under fuzzing.

// eventGen makes random events of every type, with every field. Its
// strings mix plain text with quotes, backslashes, slashes, the escapes
// \b \f \n \r \t and multi-byte UTF-8. With unusual set it also uses text
// that the encoders write with a \u escape (other control characters,
// U+2028, invalid UTF-8, and <>& in the commit's own strings, which
// json.Marshal escapes), times that are not UTC and integers of 19 digits;
// used records whether it did.
type eventGen struct {
	r       *rand.Rand
	unusual bool
	used    bool
	small   bool // amounts of at most 6+6 digits, rather than up to 30+18
	plain   bool // only the types and fields of logs from before grants and scopes
}

// plainTypes are the event types of logs from before grants and scopes.
var plainTypes = []Type{
	TypeBudgetSet, TypeToppedUp, TypeReserved, TypeDenied, TypeRecorded, TypeReleased, TypeExpired,
	TypeExtended, TypeThresholdCrossed, TypeBudgetExhausted, TypeBudgetRestored,
}

// Fragments of generated strings.
var (
	plainFragments = []string{
		"user_123", "acme", "0195a3c4-6f2e-7a10", "research agent", "ユーザー", "é", "😀", "日本",
		`q"uote`, `back\slash`, "sl/ash", "tab\t", "nl\n", "cr\r", "bs\b", "ff\f", `\u0041`, "\x7f", "",
	}
	unusualFragments = []string{"ctl\x01", "nul\x00", "ls\u2028", "ps\u2029", "bad\xffutf8", "half\xe2\x82"}
	htmlFragments    = []string{"<b>", "a&b", "x>y"}
)

func (g *eventGen) str() string {
	var sb strings.Builder
	for range 1 + g.r.Intn(3) {
		if g.unusual && g.r.Intn(12) == 0 {
			g.used = true
			sb.WriteString(unusualFragments[g.r.Intn(len(unusualFragments))])
			continue
		}
		if g.r.Intn(8) == 0 {
			sb.WriteString(htmlFragments[g.r.Intn(len(htmlFragments))]) // Encode does not escape HTML
			continue
		}
		sb.WriteString(plainFragments[g.r.Intn(len(plainFragments))])
	}
	if g.r.Intn(3) == 0 {
		fmt.Fprintf(&sb, "%x", g.r.Uint64())
	}
	return sb.String()
}

// commitStr is a string for the commit's id or writer, which json.Marshal
// writes with HTML escaping.
func (g *eventGen) commitStr() string {
	s := g.str()
	if strings.ContainsAny(s, "<>&") && !g.unusual {
		return strings.NewReplacer("<", "(", ">", ")", "&", "+").Replace(s)
	}
	if strings.ContainsAny(s, "<>&") {
		g.used = true
	}
	return s
}

// opt returns s or, half of the time, "" (an omitted field).
func (g *eventGen) opt(s string) string {
	if g.r.Intn(2) == 0 {
		return ""
	}
	return s
}

// units returns an amount of up to intDigits integer digits and up to 18
// fractional digits, made by the parser the decoder uses.
func (g *eventGen) units(intDigits int) Units {
	if g.r.Intn(6) == 0 {
		return Zero
	}
	fracDigits := UnitsFractionDigitsMax
	if g.small {
		intDigits, fracDigits = min(intDigits, 6), 6
	}
	var sb strings.Builder
	sb.WriteByte(byte('1' + g.r.Intn(9)))
	for range g.r.Intn(intDigits) {
		sb.WriteByte(byte('0' + g.r.Intn(10)))
	}
	if n := g.r.Intn(fracDigits + 1); n > 0 {
		sb.WriteByte('.')
		for range n {
			sb.WriteByte(byte('0' + g.r.Intn(10)))
		}
	}
	u, err := parseTotal(sb.String())
	if err != nil {
		panic(err)
	}
	// Parse the canonical text again: apd's representation of a value
	// can depend on the text it came from (a long text with trailing
	// zeros keeps a heap coefficient), and Encode writes canonical text.
	if u, err = parseTotal(u.String()); err != nil {
		panic(err)
	}
	return u
}

func (g *eventGen) request() Units { return g.units(UnitsMaxExponent) }
func (g *eventGen) total() Units   { return g.units(totalMaxExponent) }

func (g *eventGen) time() time.Time {
	if g.r.Intn(8) == 0 {
		return time.Time{}
	}
	t := time.Unix(g.r.Int63n(253402300799+62135596800)-62135596800, 0).UTC() // years 1..9999
	switch g.r.Intn(4) {
	case 0:
		t = t.Add(time.Duration(g.r.Intn(1e9)))
	case 1:
		t = t.Add(time.Duration(g.r.Intn(1000)) * time.Millisecond)
	case 2:
		t = t.Add(time.Duration(g.r.Intn(10)) * 100 * time.Millisecond) // trailing zeros are trimmed
	}
	if g.unusual && g.r.Intn(20) == 0 {
		g.used = true
		return t.In(time.FixedZone("", 3600*(1+g.r.Intn(12)))) // written with an offset
	}
	return t
}

// ext reports whether to set a field that came with grants and scopes:
// never in plain mode, else half of the time.
func (g *eventGen) ext() bool { return !g.plain && g.r.Intn(2) == 0 }

func (g *eventGen) balance() Balance {
	b := Balance{PeriodStart: g.time(), Limit: g.total(), TopUps: g.total(), Used: g.total(),
		Reserved: g.total(), Remaining: g.total()}
	if g.ext() {
		b.Grants, b.GrantsUsed, b.Overdraft, b.Overdrawn = g.total(), g.total(), g.total(), g.total()
	}
	return b
}

// optUnits is an amount half of the time, else zero (omitted, omitzero).
func (g *eventGen) optUnits() Units {
	if !g.ext() {
		return Zero
	}
	return g.request()
}

// integer is zero, small, negative or as large as 18 digits; with unusual
// set, sometimes 19 digits (handed over: the fast decoder reads 18).
func (g *eventGen) integer() int {
	switch g.r.Intn(6) {
	case 0:
		return 0
	case 1:
		return -g.r.Intn(1000)
	case 2:
		return g.r.Intn(1e18)
	case 3:
		if g.unusual {
			g.used = true
			return math.MaxInt64 - g.r.Intn(1000)
		}
	}
	return g.r.Intn(10001)
}

// optInt is an integer in ext mode, else 0 (omitted, omitempty).
func (g *eventGen) optInt() int {
	if !g.ext() {
		return 0
	}
	return g.integer()
}

func (g *eventGen) scope() map[string]string {
	if !g.ext() {
		return nil
	}
	m := make(map[string]string)
	for range 1 + g.r.Intn(4) {
		m[g.str()] = g.str()
	}
	return m
}

func (g *eventGen) scopeRef() ScopeRef { return ScopeRef{Dimension: g.str(), Value: g.str()} }

func (g *eventGen) scopeRefs() []ScopeRef {
	if !g.ext() {
		return nil
	}
	rs := make([]ScopeRef, 1+g.r.Intn(4))
	for i := range rs {
		rs[i] = g.scopeRef()
	}
	return rs
}

func (g *eventGen) refusedScope() *ScopeRef {
	if !g.ext() {
		return nil
	}
	r := g.scopeRef()
	return &r
}

func (g *eventGen) scopeLimits() []ScopeLimit {
	if !g.ext() {
		return nil
	}
	ls := make([]ScopeLimit, 1+g.r.Intn(4))
	for i := range ls {
		ls[i] = ScopeLimit{Dimension: g.str(), Value: g.str(), Limit: g.request(), Period: g.str()}
	}
	return ls
}

func (g *eventGen) fundedBy() []GrantDraw {
	if !g.ext() {
		return nil
	}
	ds := make([]GrantDraw, 1+g.r.Intn(4))
	for i := range ds {
		ds[i] = GrantDraw{GrantID: g.str(), Units: g.request()}
	}
	return ds
}

func (g *eventGen) overdraft() *Units {
	if !g.ext() {
		return nil
	}
	u := g.request()
	return &u
}

func (g *eventGen) req() Request {
	return Request{IdempotencyKey: g.opt(g.str()), RequestHash: g.opt(g.str())}
}

func (g *eventGen) thresholds() []Units {
	if g.r.Intn(2) == 0 {
		return nil
	}
	ts := make([]Units, 1+g.r.Intn(4))
	for i := range ts {
		ts[i] = g.units(1)
	}
	return ts
}

func (g *eventGen) agentLimits() map[string]Units {
	if g.r.Intn(2) == 0 {
		return nil
	}
	m := make(map[string]Units)
	for range 1 + g.r.Intn(4) {
		m[g.str()] = g.request()
	}
	return m
}

func (g *eventGen) ceiling() *Units {
	if g.r.Intn(2) == 0 {
		return nil
	}
	u := g.request()
	return &u
}

// metadata returns a random JSON object as json.Marshal writes it (with
// HTML escaped as \u003c and so on), one of a few hand-written ones, or nil.
func (g *eventGen) metadata() json.RawMessage {
	switch g.r.Intn(4) {
	case 0:
		return nil
	case 1:
		fixed := []string{
			`{}`, `{"a":[]}`, `{"n":-0.5e+10,"m":1E-3,"z":0,"big":123456789012345678901234567890}`,
			`{"s":"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t","t":true,"f":false,"null":null}`,
			`{"deep":{"a":[[[{"b":[1,{"c":{}}]}]]]}}`, `{"dup":1,"dup":2}`, `{"":""}`,
		}
		return json.RawMessage(fixed[g.r.Intn(len(fixed))])
	}
	b, err := json.Marshal(g.jsonObject(3))
	if err != nil {
		panic(err)
	}
	return b
}

func (g *eventGen) jsonObject(depth int) map[string]any {
	m := make(map[string]any)
	for range g.r.Intn(4) {
		m[g.str()] = g.jsonValue(depth - 1)
	}
	return m
}

func (g *eventGen) jsonValue(depth int) any {
	n := 5
	if depth > 0 {
		n = 7
	}
	switch g.r.Intn(n) {
	case 0:
		return g.str()
	case 1:
		return g.r.NormFloat64() * 1e6
	case 2:
		return g.r.Intn(2) == 0
	case 3:
		return nil
	case 4:
		return g.r.Int63()
	case 5:
		return []any{g.jsonValue(depth - 1), g.jsonValue(depth - 1)}
	}
	return g.jsonObject(depth - 1)
}

// data returns random data of type t.
func (g *eventGen) data(t Type) Data {
	switch t {
	case TypeBudgetSet:
		return &BudgetSet{Limit: g.request(), Period: g.str(), Thresholds: g.thresholds(), UpgradeURL: g.opt(g.str()),
			AgentLimits: g.agentLimits(), Source: g.str(), Rollover: g.optExt(), Overdraft: g.overdraft(),
			ScopeLimits: g.scopeLimits(), MaxRuns: g.optInt(), MaxRunsPerAgent: g.optInt(), PriceList: g.optExt(),
			Request: g.req(), Balance: g.balance()}
	case TypeToppedUp:
		return &ToppedUp{Units: g.request(), Note: g.opt(g.str()), Request: g.req(), Balance: g.balance()}
	case TypeReserved:
		return &Reserved{ReservationID: g.str(), AgentID: g.str(), Units: g.request(), TaskRef: g.opt(g.str()),
			TaskCeiling: g.ceiling(), ExpiresAt: g.time(), Metadata: g.metadata(), Scope: g.scope(),
			CountedScopes: g.scopeRefs(), Requested: g.optUnits(), InOverdraft: g.ext(), Pricing: g.pricing(),
			MaxOutputTokens: int64(g.optInt()), Request: g.req(), Balance: g.balance()}
	case TypeDenied:
		return &Denied{AgentID: g.str(), Requested: g.request(), Reason: g.str(), Message: g.str(),
			TaskRef: g.opt(g.str()), UpgradeURL: g.opt(g.str()), Scope: g.scope(), RefusedScope: g.refusedScope(),
			Request: g.req(), Balance: g.balance()}
	case TypeRecorded:
		return &Recorded{AgentID: g.str(), ReservationID: g.opt(g.str()), HeldUnits: g.request(), Units: g.request(),
			Released: g.request(), Overage: g.request(), TaskRef: g.opt(g.str()), Metadata: g.metadata(),
			Scope: g.scope(), CountedScopes: g.scopeRefs(), FundedBy: g.fundedBy(), Usage: g.usage(), Pricing: g.pricing(),
			Unpriced: g.optExt(), Request: g.req(), Balance: g.balance()}
	case TypeReleased:
		return &Released{ReservationID: g.str(), AgentID: g.str(), Units: g.request(), Cause: g.str(),
			Request: g.req(), Balance: g.balance()}
	case TypeExpired:
		return &Expired{ReservationID: g.str(), AgentID: g.str(), Units: g.request(), ExpiresAt: g.time(), Balance: g.balance()}
	case TypeExtended:
		return &Extended{ReservationID: g.str(), AgentID: g.str(), ExpiresAt: g.time(), Request: g.req(), Balance: g.balance()}
	case TypeThresholdCrossed:
		return &ThresholdCrossed{Fraction: g.units(1), Balance: g.balance()}
	case TypeBudgetExhausted:
		return &BudgetExhausted{Trigger: g.str(), AgentID: g.opt(g.str()), UpgradeURL: g.opt(g.str()), Balance: g.balance()}
	case TypeBudgetRestored:
		return &BudgetRestored{Trigger: g.str(), Balance: g.balance()}
	case TypeGranted:
		return &Granted{GrantID: g.str(), Units: g.request(), Priority: g.integer(), Source: g.str(), Note: g.opt(g.str()),
			EffectiveAt: g.time(), ExpiresAt: g.time(), Request: g.req(), Balance: g.balance()}
	case TypeGrantExpired:
		return &GrantExpired{GrantID: g.str(), Units: g.request(), Remaining: g.request(), ExpiresAt: g.time(), Balance: g.balance()}
	case TypeOverdraftStarted:
		return &OverdraftStarted{AgentID: g.opt(g.str()), Overdraft: g.request(), Balance: g.balance()}
	case TypePricesSet:
		body := g.metadata()
		if body == nil {
			body = json.RawMessage(`{"list":"default"}`)
		}
		return &PricesSet{PriceList: g.str(), Version: g.str(), Digest: g.str(), Models: g.integer(), Body: body}
	}
	panic("unknown type " + t)
}

// count is a token count, or nil (not reported).
func (g *eventGen) count() *int64 {
	if g.r.Intn(3) == 0 {
		return nil
	}
	n := g.r.Int63n(TokensMax)
	return &n
}

func (g *eventGen) usage() *Usage {
	if !g.ext() {
		return nil
	}
	return &Usage{Model: g.str(), Provider: g.opt(g.str()), InputTokens: g.count(), OutputTokens: g.count(),
		CacheReadTokens: g.count(), CacheWriteTokens: g.count(), CacheWrite1hTokens: g.count(),
		ReasoningTokens: g.count(), ServiceTier: g.opt(g.str())}
}

func (g *eventGen) pricing() *Pricing {
	if !g.ext() {
		return nil
	}
	p := &Pricing{List: g.str(), Version: g.str(), Model: g.str(), Provider: g.opt(g.str()),
		ServiceTier: g.opt(g.str()), AboveInputTokens: int64(g.optInt()), Total: g.request()}
	for range g.r.Intn(4) {
		p.Lines = append(p.Lines, PriceLine{Kind: TokenKind(g.str()), Tokens: g.r.Int63n(TokensMax), Rate: g.request()})
	}
	if g.ext() {
		fee := g.request()
		p.RequestFee = &fee
	}
	return p
}

// optExt is a string in ext mode, else "" (omitted).
func (g *eventGen) optExt() string {
	if !g.ext() {
		return ""
	}
	return g.str()
}

func (g *eventGen) envelope() *Envelope {
	types := Types
	if g.plain {
		types = plainTypes
	}
	t := types[g.r.Intn(len(types))]
	return &Envelope{ID: g.str(), Type: t, V: Version, At: g.time(), CustomerID: g.str(), Data: g.data(t)}
}

// commit returns the body of a random commit of up to eventsMax events.
func (g *eventGen) commit(t testing.TB, eventsMax int) []byte {
	t.Helper()
	var enc CommitEncoder
	enc.Reset(g.commitStr(), g.commitStr(), g.time())
	for range g.r.Intn(eventsMax + 1) {
		b, err := Encode(g.envelope())
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		enc.Add(b)
	}
	return append([]byte(nil), enc.Bytes()...)
}

// TestFastDecodeCommitEquivalence decodes random commits both ways. The
// fast decoder must return what encoding/json returns, and must decode
// (not hand over) every commit without \u escapes or time offsets.
func TestFastDecodeCommitEquivalence(t *testing.T) {
	const commits = 3000
	r := rand.New(rand.NewSource(1))
	var handled, handedOver, events int
	arena := new(Arena) // reused for every commit, as a replay does
	for i := range commits {
		g := &eventGen{r: r, unusual: i%4 == 0}
		body := g.commit(t, 8)
		want, err := decodeCommitSlow(body)
		if err != nil {
			t.Fatalf("decodeCommitSlow(%s): %v", body, err)
		}
		got, err := fastDecodeCommit(body, nil)
		inArena, arenaErr := DecodeCommitInto(body, arena)
		if arenaErr != nil || !reflect.DeepEqual(inArena, want) {
			t.Fatalf("decoding in a reused arena differs for %s (%v):\n got %#v\nwant %#v", body, arenaErr, inArena, want)
		}
		arena.Reset()
		switch {
		case err == nil:
			handled++
			events += len(got.Events)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fast decoding differs for %s:\n got %#v\nwant %#v", body, got, want)
			}
		case !g.used:
			t.Fatalf("fast decoder handed over a canonical commit: %s", body)
		default:
			handedOver++
		}
	}
	t.Logf("%d commits (%d events) decoded fast, %d handed over", handled, events, handedOver)
	if handled < commits/2 || handedOver == 0 || events < commits {
		t.Errorf("decoded fast %d (%d events), handed over %d: the generator does not cover both paths", handled, events, handedOver)
	}
}

// TestFastDecodeEquivalence is the same check for single events (Decode),
// and also checks that the canonical encodings decode to the event encoded.
func TestFastDecodeEquivalence(t *testing.T) {
	const eventsN = 5000
	r := rand.New(rand.NewSource(2))
	have := make(map[Type]int)
	for i := range eventsN {
		g := &eventGen{r: r, unusual: i%4 == 0}
		e := g.envelope()
		body, err := Encode(e)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		want, err := decodeSlow(body)
		if err != nil {
			t.Fatalf("decodeSlow(%s): %v", body, err)
		}
		got, err := fastDecode(body)
		if err != nil {
			if !g.used {
				t.Fatalf("fast decoder handed over a canonical event: %s", body)
			}
			continue
		}
		have[e.Type]++
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fast decoding differs for %s:\n got %#v\nwant %#v", body, got, want)
		}
		if !g.used && !reflect.DeepEqual(got, e) {
			t.Fatalf("decoded event differs from the one encoded, %s:\n got %#v\nwant %#v", body, got, e)
		}
	}
	for _, ty := range Types {
		if have[ty] == 0 {
			t.Errorf("no %s event was decoded fast", ty)
		}
	}
}

// sameAsSlow checks that DecodeCommit and Decode behave on b exactly as
// encoding/json alone does: equal values, or errors with equal text.
func sameAsSlow(t *testing.T, b []byte) {
	t.Helper()
	got, err := DecodeCommit(b)
	want, wantErr := decodeCommitSlow(b)
	sameResult(t, "DecodeCommit", b, got, err, want, wantErr)
	gotE, err := Decode(b)
	wantE, wantErr := decodeSlow(b)
	sameResult(t, "Decode", b, gotE, err, wantE, wantErr)
}

func sameResult[T any](t *testing.T, what string, b []byte, got T, err error, want T, wantErr error) {
	t.Helper()
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("%s(%q) error = %v, want %v", what, b, err, wantErr)
	case err != nil && err.Error() != wantErr.Error():
		t.Fatalf("%s(%q) error = %q, want %q", what, b, err, wantErr)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("%s(%q) = %#v, want %#v", what, b, got, want)
	}
}

// Canonical inputs the hand-over tests edit.
const (
	fastTestEvent = `{"id":"e1","type":"reserved","v":1,"at":"2026-03-14T09:00:00.5Z","customer_id":"user_123",` +
		`"data":{"reservation_id":"r1","agent_id":"a\"1","units":10,"task_ceiling":12.5,` +
		`"expires_at":"2026-03-14T09:15:00Z","metadata":{"k":[1,"v",{"x":null}]},"idempotency_key":"k1",` +
		`"balance":{"period_start":"2026-03-01T00:00:00Z","limit":1000,"top_ups":0,"used":120,"reserved":10,"remaining":870}}}`
	fastTestBudget = `{"id":"e2","type":"budget_set","v":1,"at":"0001-01-01T00:00:00Z","customer_id":"c",` +
		`"data":{"limit":100,"period":"monthly","thresholds":[0.5,0.8],"agent_limits":{"a":5,"b":6},"source":"admin",` +
		`"balance":{"period_start":"0001-01-01T00:00:00Z","limit":100,"top_ups":0,"used":0,"reserved":0,"remaining":100}}}`
	// fastTestExt are events with every field that came with grants,
	// scopes and overdraft.
	fastTestExt = `{"id":"e3","type":"recorded","v":1,"at":"2026-03-14T09:01:00Z","customer_id":"user_123",` +
		`"data":{"agent_id":"a1","reservation_id":"r1","held_units":10,"units":12,"released":0,"overage":2,` +
		`"scope":{"team":"research","user":"alice"},"counted_scopes":[{"dimension":"team","value":"research"}],` +
		`"funded_by":[{"grant_id":"g1","units":2}],"balance":{"period_start":"2026-03-01T00:00:00Z","limit":1000,` +
		`"top_ups":0,"used":132,"reserved":0,"remaining":868,"grants":48,"grants_used":2,"overdraft":20,"overdrawn":0.5}}},` +
		`{"id":"e4","type":"granted","v":1,"at":"2026-03-14T09:02:00Z","customer_id":"user_123","data":{"grant_id":"g1",` +
		`"units":50,"priority":100,"source":"purchase","note":"n","effective_at":"2026-03-14T09:02:00Z",` +
		`"expires_at":"2026-04-14T09:02:00Z","idempotency_key":"k4","balance":{"period_start":"2026-03-01T00:00:00Z",` +
		`"limit":1000,"top_ups":0,"used":132,"reserved":0,"remaining":918,"grants":50}}},` +
		`{"id":"e5","type":"budget_set","v":1,"at":"2026-03-14T09:03:00Z","customer_id":"user_123","data":{"limit":100,` +
		`"period":"month","source":"admin","rollover":"all","overdraft":5,"scope_limits":[{"dimension":"team",` +
		`"value":"research","limit":50,"period":"month"}],"max_concurrent_runs":3,"max_concurrent_runs_per_agent":1,` +
		`"balance":{}}},` +
		`{"id":"e6","type":"reserved","v":1,"at":"2026-03-14T09:04:00Z","customer_id":"user_123","data":{` +
		`"reservation_id":"r2","agent_id":"a1","units":4,"expires_at":"2026-03-14T09:19:00Z","scope":{"team":"ops"},` +
		`"counted_scopes":[{"dimension":"team","value":"ops"},{"dimension":"user","value":"bob"}],"requested":9,` +
		`"in_overdraft":true,"balance":{}}},` +
		`{"id":"e7","type":"denied","v":1,"at":"2026-03-14T09:05:00Z","customer_id":"user_123","data":{"agent_id":"a1",` +
		`"requested":9,"reason":"scope_limit_exceeded","message":"m","scope":{"team":"ops"},` +
		`"refused_scope":{"dimension":"team","value":"ops"},"balance":{}}},` +
		`{"id":"e8","type":"grant_expired","v":1,"at":"2026-03-14T09:06:00Z","customer_id":"user_123","data":{` +
		`"grant_id":"g1","units":50,"remaining":3.5,"expires_at":"2026-03-14T09:06:00Z","balance":{}}},` +
		`{"id":"e9","type":"overdraft_started","v":1,"at":"2026-03-14T09:07:00Z","customer_id":"user_123","data":{` +
		`"agent_id":"a1","overdraft":20,"balance":{}}}`
	fastTestEvents = fastTestEvent + `,` + fastTestExt + `,` + fastTestBudget
	fastTestCommit = `{"v":1,"id":"c1","writer":"0","at":"2026-03-14T09:00:00.123456789Z","events":[` +
		fastTestEvents + `]}`
)

// TestFastDecodeHandsOver: inputs the fast decoder must hand to
// encoding/json, which then decodes them, or refuses them, as it always did.
func TestFastDecodeHandsOver(t *testing.T) {
	tests := []struct{ name, old, new string }{
		{"reordered envelope", `"type":"reserved","v":1`, `"v":1,"type":"reserved"`},
		{"reordered data", `"reservation_id":"r1","agent_id":"a\"1"`, `"agent_id":"a\"1","reservation_id":"r1"`},
		{"reordered balance", `"limit":1000,"top_ups":0`, `"top_ups":0,"limit":1000`},
		{"reordered commit", `"v":1,"id":"c1"`, `"id":"c1","v":1`},
		{"space after colon", `"units":10`, `"units": 10`},
		{"space in commit", `"events":[`, `"events": [`},
		{"newline between events", `}}},{"id":"e2"`, "}}},\n{\"id\":\"e2\""},
		{"space in metadata", `{"k":[1,"v"`, `{"k": [1,"v"`},
		{"unknown data field", `"units":10,`, `"units":10,"colour":"red",`},
		{"union field of another type", `"units":10,`, `"units":10,"note":"n",`},
		{"unknown envelope field", `"customer_id":"user_123",`, `"customer_id":"user_123","x":1,`},
		{"unknown commit field", `"writer":"0",`, `"writer":"0","x":[],`},
		{"key in other case", `"customer_id":"user_123"`, `"Customer_ID":"user_123"`},
		{"escaped key", `"agent_id":`, `"agent\u005fid":`},
		{"duplicate key", `"units":10,`, `"units":10,"units":11,`},
		{"duplicate agent limit", `{"a":5,"b":6}`, `{"a":5,"a":6}`},
		{"duplicate id", `"id":"e1",`, `"id":"e1","id":"e0",`},
		{"unicode escape", `"customer_id":"user_123"`, `"customer_id":"user\u005f123"`},
		{"surrogate escape", `"customer_id":"user_123"`, `"customer_id":"\ud83d\ude00"`},
		{"lone surrogate", `"customer_id":"user_123"`, `"customer_id":"\ud83d"`},
		{"escaped type", `"type":"reserved"`, `"type":"reserv\u0065d"`},
		{"slash-escaped type", `"type":"reserved"`, `"type":"reserved\/"`},
		{"invalid UTF-8", `"customer_id":"user_123"`, "\"customer_id\":\"user\xff123\""},
		{"control character", `"customer_id":"user_123"`, "\"customer_id\":\"user\x01123\""},
		{"bad escape", `"customer_id":"user_123"`, `"customer_id":"user\x123"`},
		{"null string", `"customer_id":"user_123"`, `"customer_id":null`},
		{"null amount", `"units":10`, `"units":null`},
		{"null time", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":null`},
		{"null metadata", `"metadata":{"k":[1,"v",{"x":null}]}`, `"metadata":null`},
		{"null data", `"data":{"limit"`, `"data":null,"x":{"limit"`},
		{"null events", `"events":[` + fastTestEvents + `]`, `"events":null`},
		{"null task ceiling", `"task_ceiling":12.5`, `"task_ceiling":null`},
		{"null thresholds", `"thresholds":[0.5,0.8]`, `"thresholds":null`},
		{"empty thresholds", `"thresholds":[0.5,0.8]`, `"thresholds":[]`},
		{"empty agent limits", `{"a":5,"b":6}`, `{}`},
		{"amount as string", `"units":10`, `"units":"10"`},
		{"negative amount", `"units":10`, `"units":-10`},
		{"negative zero", `"top_ups":0`, `"top_ups":-0`},
		{"leading zero", `"units":10`, `"units":010`},
		{"bare fraction", `"units":10`, `"units":.5`},
		{"19 fractional digits", `"units":10`, `"units":0.0000000000000000001`},
		{"above the log bound", `"units":10`, `"units":1000000000000000000000000000001`},
		{"65-byte amount", `"units":10`, `"units":1.` + strings.Repeat("0", 63)},
		{"version 2", `"type":"reserved","v":1`, `"type":"reserved","v":2`},
		{"no version", `"type":"reserved","v":1`, `"type":"reserved"`},
		{"version 1.0", `"type":"reserved","v":1`, `"type":"reserved","v":1.0`},
		{"version as string", `"type":"reserved","v":1`, `"type":"reserved","v":"1"`},
		{"commit version 2", `{"v":1,"id":"c1"`, `{"v":2,"id":"c1"`},
		{"commit version 10", `{"v":1,"id":"c1"`, `{"v":10,"id":"c1"`},
		{"no commit version", `{"v":1,"id":"c1"`, `{"id":"c1"`},
		{"unknown type", `"type":"reserved"`, `"type":"refunded"`},
		{"type case", `"type":"reserved"`, `"type":"Reserved"`},
		{"time with offset", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2026-03-14T10:15:00+01:00"`},
		{"time with zero offset", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2026-03-14T09:15:00+00:00"`},
		{"time with 10 fraction digits", `"at":"2026-03-14T09:00:00.5Z"`, `"at":"2026-03-14T09:00:00.5000000001Z"`},
		{"time with lower z", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2026-03-14T09:15:00z"`},
		{"time with lower t", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2026-03-14t09:15:00Z"`},
		{"time with comma", `"at":"2026-03-14T09:00:00.5Z"`, `"at":"2026-03-14T09:00:00,5Z"`},
		{"time with escape", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2026-03-14T09:15:00\u005a"`},
		{"time one-digit hour", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2026-03-14T9:15:00Z"`},
		{"time hour 24", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2026-03-14T24:00:00Z"`},
		{"time second 60", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2016-12-31T23:59:60Z"`},
		{"time February 29 of 2026", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2026-02-29T09:15:00Z"`},
		{"time month 13", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2026-13-14T09:15:00Z"`},
		{"time as number", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":20260314`},
		{"metadata array", `"metadata":{"k":[1,"v",{"x":null}]}`, `"metadata":[1]`},
		{"metadata string", `"metadata":{"k":[1,"v",{"x":null}]}`, `"metadata":"m"`},
		{"metadata too deep for the fast decoder", `"metadata":{"k":[1,"v",{"x":null}]}`,
			`"metadata":` + strings.Repeat(`{"a":`, metadataDepthMax) + `1` + strings.Repeat(`}`, metadataDepthMax)},
		{"metadata too deep for encoding/json", `"metadata":{"k":[1,"v",{"x":null}]}`,
			`"metadata":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001)},
		{"metadata bad literal", `{"x":null}`, `{"x":nul}`},
		{"metadata bad number", `[1,"v"`, `[01,"v"`},
		{"metadata bare fraction", `[1,"v"`, `[1.,"v"`},
		{"metadata bad exponent", `[1,"v"`, `[1e,"v"`},
		{"metadata trailing comma", `{"x":null}`, `{"x":null,}`},
		{"metadata bad escape", `[1,"v",`, `[1,"\x",`},
		{"metadata short unicode escape", `[1,"v",`, `[1,"\u12",`},
		{"metadata control character", `[1,"v",`, "[1,\"\x01\","},
		{"missing data", `,"data":{"reservation_id"`, `,"x":{"reservation_id"`},
		{"data is a string", `"data":{"limit":100`, `"data":"x","y":{"limit":100`},
		{"trailing garbage", `"remaining":100}}}]}`, `"remaining":100}}}]}x`},
		{"trailing space", `"remaining":100}}}]}`, `"remaining":100}}}]} `},
		{"leading space", `{"v":1,"id":"c1"`, ` {"v":1,"id":"c1"`},
		{"byte order mark", `{"v":1,"id":"c1"`, "\ufeff{\"v\":1,\"id\":\"c1\""},
		{"truncated", `"remaining":100}}}]}`, `"remaining":100}}}]`},
		{"event not an object", `"events":[`, `"events":[1,`},
		{"trailing comma in events", `"remaining":100}}}]}`, `"remaining":100}}},]}`},
		// The fields that came with grants, scopes and overdraft.
		{"empty scope", `"scope":{"team":"research","user":"alice"}`, `"scope":{}`},
		{"repeated scope key", `"scope":{"team":"research","user":"alice"}`, `"scope":{"team":"research","team":"ops"}`},
		{"scope value a number", `"scope":{"team":"research","user":"alice"}`, `"scope":{"team":1}`},
		{"scope an array", `"scope":{"team":"research","user":"alice"}`, `"scope":["team"]`},
		{"null scope", `"scope":{"team":"research","user":"alice"}`, `"scope":null`},
		{"empty counted scopes", `"counted_scopes":[{"dimension":"team","value":"research"}]`, `"counted_scopes":[]`},
		{"reordered scope ref", `[{"dimension":"team","value":"research"}]`, `[{"value":"research","dimension":"team"}]`},
		{"repeated scope ref key", `[{"dimension":"team","value":"research"}]`, `[{"dimension":"team","dimension":"x"}]`},
		{"unknown scope ref key", `[{"dimension":"team","value":"research"}]`, `[{"dimension":"team","value":"research","x":1}]`},
		{"scope ref key in other case", `[{"dimension":"team","value":"research"}]`, `[{"Dimension":"team","value":"research"}]`},
		{"null scope ref", `[{"dimension":"team","value":"research"}]`, `[null]`},
		{"trailing comma in counted scopes", `[{"dimension":"team","value":"research"}]`, `[{"dimension":"team","value":"research"},]`},
		{"empty funded_by", `"funded_by":[{"grant_id":"g1","units":2}]`, `"funded_by":[]`},
		{"funded amount as string", `"funded_by":[{"grant_id":"g1","units":2}]`, `"funded_by":[{"grant_id":"g1","units":"2"}]`},
		{"funded_by an object", `"funded_by":[{"grant_id":"g1","units":2}]`, `"funded_by":{"grant_id":"g1","units":2}`},
		{"empty scope limits", `"scope_limits":[{"dimension":"team","value":"research","limit":50,"period":"month"}]`, `"scope_limits":[]`},
		{"negative scope limit", `"value":"research","limit":50`, `"value":"research","limit":-50`},
		{"integer with fraction", `"max_concurrent_runs":3`, `"max_concurrent_runs":3.0`},
		{"integer with exponent", `"max_concurrent_runs":3`, `"max_concurrent_runs":3e0`},
		{"integer with leading zero", `"max_concurrent_runs":3`, `"max_concurrent_runs":03`},
		{"integer as string", `"max_concurrent_runs":3`, `"max_concurrent_runs":"3"`},
		{"null integer", `"max_concurrent_runs":3`, `"max_concurrent_runs":null`},
		{"integer of 19 digits", `"priority":100`, `"priority":1000000000000000000`},
		{"integer past int64", `"priority":100`, `"priority":9223372036854775808`},
		{"minus alone", `"priority":100`, `"priority":-`},
		{"plus sign", `"priority":100`, `"priority":+1`},
		{"boolean as number", `"in_overdraft":true`, `"in_overdraft":1`},
		{"boolean as string", `"in_overdraft":true`, `"in_overdraft":"true"`},
		{"boolean in capitals", `"in_overdraft":true`, `"in_overdraft":True`},
		{"null boolean", `"in_overdraft":true`, `"in_overdraft":null`},
		{"null overdraft", `"overdraft":5`, `"overdraft":null`},
		{"null refused scope", `"refused_scope":{"dimension":"team","value":"ops"}`, `"refused_scope":null`},
		{"grant fields reordered", `"priority":100,"source":"purchase"`, `"source":"purchase","priority":100`},
		{"balance keys reordered", `"grants":48,"grants_used":2`, `"grants_used":2,"grants":48`},
		{"balance key of another event", `"overdrawn":0.5}`, `"overdrawn":0.5,"requested":1}`},
		{"effective_at with offset", `"effective_at":"2026-03-14T09:02:00Z"`, `"effective_at":"2026-03-14T10:02:00+01:00"`},
		{"grant field in a reserved event", `"in_overdraft":true,`, `"in_overdraft":true,"priority":1,`},
		{"new type case", `"type":"granted"`, `"type":"Granted"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(fastTestCommit, tt.old) {
				t.Fatalf("%q is not in the test commit", tt.old)
			}
			b := []byte(strings.Replace(fastTestCommit, tt.old, tt.new, 1))
			if _, err := fastDecodeCommit(b, nil); !errors.Is(err, errNotHandled) {
				t.Errorf("fastDecodeCommit(%s) error = %v, want errNotHandled", b, err)
			}
			sameAsSlow(t, b)
			if !strings.Contains(fastTestEvent, tt.old) {
				return
			}
			e := []byte(strings.Replace(fastTestEvent, tt.old, tt.new, 1))
			if _, err := fastDecode(e); !errors.Is(err, errNotHandled) {
				t.Errorf("fastDecode(%s) error = %v, want errNotHandled", e, err)
			}
			sameAsSlow(t, e)
		})
	}
}

// TestFastDecodeHandles: unusual inputs the fast decoder is certain about
// and decodes itself, as encoding/json does.
func TestFastDecodeHandles(t *testing.T) {
	tests := []struct{ name, old, new string }{
		{"as written", "", ""},
		{"absent key", `"customer_id":"user_123",`, ``},
		{"absent balance", `,"balance":{"period_start":"2026-03-01T00:00:00Z","limit":1000,"top_ups":0,"used":120,"reserved":10,"remaining":870}`, ``},
		{"empty balance", `{"period_start":"2026-03-01T00:00:00Z","limit":1000,"top_ups":0,"used":120,"reserved":10,"remaining":870}`, `{}`},
		{"absent events", `,"events":[` + fastTestEvents + `]`, ``},
		{"empty events", `[` + fastTestEvents + `]`, `[]`},
		{"empty data", `{"limit":100,"period":"monthly","thresholds":[0.5,0.8],"agent_limits":{"a":5,"b":6},"source":"admin",` +
			`"balance":{"period_start":"0001-01-01T00:00:00Z","limit":100,"top_ups":0,"used":0,"reserved":0,"remaining":100}}`, `{}`},
		{"simple escapes", `"agent_id":"a\"1"`, `"agent_id":"\"\\\/\b\f\n\r\t"`},
		{"escaped map key", `{"a":5,"b":6}`, `{"a\n":5,"a\t":6}`},
		{"multi-byte UTF-8", `"customer_id":"user_123"`, `"customer_id":"ユーザー😀"`},
		{"DEL", `"customer_id":"user_123"`, "\"customer_id\":\"\x7f\""},
		{"literal U+FFFD", `"customer_id":"user_123"`, "\"customer_id\":\"\uFFFD\""},
		{"empty metadata", `{"k":[1,"v",{"x":null}]}`, `{}`},
		{"metadata with escapes", `{"k":[1,"v",{"x":null}]}`, `{"\u00e9":"\ud800\"\\","k":"\uD83D\uDE00"}`},
		{"metadata with numbers", `{"k":[1,"v",{"x":null}]}`, `{"a":-0,"b":0.5e-7,"c":1E+400,"d":[true,false,-12.75]}`},
		{"metadata with invalid UTF-8", `{"k":[1,"v",{"x":null}]}`, "{\"k\":\"\xff\xfe\"}"},
		{"metadata with repeated keys", `{"k":[1,"v",{"x":null}]}`, `{"k":1,"k":2}`},
		{"metadata at the depth bound", `{"k":[1,"v",{"x":null}]}`,
			strings.Repeat(`{"a":`, metadataDepthMax-1) + `1` + strings.Repeat(`}`, metadataDepthMax-1)},
		{"amount with exponent", `"units":10`, `"units":1e1`},
		{"amount with plus exponent", `"units":10`, `"units":1E+1`},
		{"amount with trailing zeros", `"units":10`, `"units":10.000`},
		{"largest log amount", `"units":10`, `"units":1000000000000000000000000000000`},
		{"smallest amount", `"units":10`, `"units":0.000000000000000001`},
		{"leap day", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"2024-02-29T23:59:59.999999999Z"`},
		{"year 0", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"0000-02-29T00:00:00Z"`},
		{"year 9999", `"expires_at":"2026-03-14T09:15:00Z"`, `"expires_at":"9999-12-31T23:59:59Z"`},
		{"fraction with trailing zeros", `"at":"2026-03-14T09:00:00.5Z"`, `"at":"2026-03-14T09:00:00.500000000Z"`},
		// The fields that came with grants, scopes and overdraft.
		{"negative integer", `"priority":100`, `"priority":-5`},
		{"zero integer", `"priority":100`, `"priority":0`},
		{"negative zero integer", `"priority":100`, `"priority":-0`},
		{"integer of 18 digits", `"priority":100`, `"priority":-999999999999999999`},
		{"false", `"in_overdraft":true`, `"in_overdraft":false`},
		{"empty refused scope", `"refused_scope":{"dimension":"team","value":"ops"}`, `"refused_scope":{}`},
		{"empty scope ref", `[{"dimension":"team","value":"research"}]`, `[{}]`},
		{"scope ref without dimension", `[{"dimension":"team","value":"research"}]`, `[{"value":"research"}]`},
		{"scope limit with its limit alone", `[{"dimension":"team","value":"research","limit":50,"period":"month"}]`, `[{"limit":50}]`},
		{"escaped scope key", `"scope":{"team":"research","user":"alice"}`, `"scope":{"te\nam":"r\"1","user":"alice"}`},
		{"amount with exponent in funded_by", `"funded_by":[{"grant_id":"g1","units":2}]`, `"funded_by":[{"grant_id":"g1","units":2e0}]`},
		{"absent grant balance keys", `,"grants":48,"grants_used":2,"overdraft":20,"overdrawn":0.5`, ``},
		{"empty new-type data", `"data":{"agent_id":"a1","overdraft":20,"balance":{}}`, `"data":{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(fastTestCommit, tt.old) {
				t.Fatalf("%q is not in the test commit", tt.old)
			}
			b := []byte(strings.Replace(fastTestCommit, tt.old, tt.new, 1))
			if _, err := fastDecodeCommit(b, nil); err != nil {
				t.Errorf("fastDecodeCommit(%s) error = %v, want it decoded", b, err)
			}
			sameAsSlow(t, b)
		})
	}
}

// TestFastDecodeTimes compares the time parser with time.Time's on texts
// around every range it checks.
func TestFastDecodeTimes(t *testing.T) {
	var texts []string
	for _, date := range []string{"2026-01-31", "2026-02-28", "2026-02-29", "2024-02-29", "1900-02-29", "2000-02-29",
		"2026-04-30", "2026-04-31", "2026-00-10", "2026-12-31", "2026-12-32", "0000-01-01", "0001-01-01", "9999-12-31"} {
		for _, clock := range []string{"00:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60", "1:00:00", "12:00:00"} {
			for _, frac := range []string{"", ".", ".0", ".1", ".123456789", ".1234567890", ".000000001"} {
				for _, zone := range []string{"Z", "+00:00", "-01:30", "z", ""} {
					texts = append(texts, date+"T"+clock+frac+zone)
				}
			}
		}
	}
	texts = append(texts, "2026-03-14 09:00:00Z", "2026-3-14T09:00:00Z", "+026-03-14T09:00:00Z", "")
	var handled int
	for _, s := range texts {
		b := []byte(`{"v":1,"id":"c","writer":"0","at":"` + s + `","events":[]}`)
		if _, err := fastDecodeCommit(b, nil); err == nil {
			handled++
		}
		sameAsSlow(t, b)
	}
	if handled == 0 {
		t.Error("no time was decoded fast")
	}
}

// TestFastDecodeAmounts compares amounts through both paths.
func TestFastDecodeAmounts(t *testing.T) {
	for _, s := range []string{"0", "1", "10", "0.5", "1.50", "0.000", "1e3", "1E+2", "1e-2", "100e-2", "-0", "-1", "01",
		".5", "1.", "1e", "1e99999", "NaN", "Infinity", "0x10", "1000000000000000", "999999999999999.999999999999999999",
		"1000000000000000000000000000000", "1000000000000000000000000000000.1", "0.0000000000000000001",
		"0.10000000000000000000", "123456789012345678901234567890.123456789012345678", "1e30", "1e31", "+1", "1-1"} {
		b := []byte(strings.Replace(fastTestCommit, `"units":10`, `"units":`+s, 1))
		sameAsSlow(t, b)
	}
}

// TestFastSchemasMatchStructs checks that each fast schema lists its event
// struct's JSON fields in struct order, which is the order Encode writes.
func TestFastSchemasMatchStructs(t *testing.T) {
	if got, want := len(fastSchemas), len(Types); got != want {
		t.Fatalf("%d fast schemas, %d types", got, want)
	}
	for _, s := range fastSchemas {
		var w wireData
		rt := reflect.TypeOf(w.typed(s.t, solo)).Elem()
		want := jsonFieldNames(rt)
		var got []string
		for _, f := range s.fields {
			got = append(got, dataFieldNames[f])
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("fast schema of %s = %v, want %v", s.t, got, want)
		}
	}
	union := jsonFieldNames(reflect.TypeOf(wireData{}))
	if got, want := dataFieldNames[:], union; !reflect.DeepEqual(got, want) {
		t.Errorf("dataFieldNames = %v, want wireData's %v", got, want)
	}
}

// jsonFieldNames lists a struct's JSON field names in order, with embedded
// structs inlined as encoding/json does.
func jsonFieldNames(rt reflect.Type) []string {
	var names []string
	for i := range rt.NumField() {
		f := rt.Field(i)
		if f.Anonymous {
			names = append(names, jsonFieldNames(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

// fuzzSeeds are commits to start fuzzing from.
func fuzzSeeds(t testing.TB) [][]byte {
	r := rand.New(rand.NewSource(3))
	seeds := [][]byte{[]byte(fastTestCommit), []byte(fastTestEvent), []byte(fastTestBudget)}
	for i := range 24 {
		g := &eventGen{r: r, unusual: i%3 == 0}
		seeds = append(seeds, g.commit(t, 2))
	}
	return seeds
}

// FuzzDecodeCommit checks that DecodeCommit and Decode, fast path and all,
// behave on arbitrary bytes exactly as encoding/json alone does.
func FuzzDecodeCommit(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsSlow(t, b)
	})
}

// FuzzDecodeCommitFields puts fuzzed text (raw JSON, escapes and all) in
// one of the places of canonical events where values vary: slot 0 the
// strings (and a map key, a scope's key and value), 1 the amounts, 2 the
// times, 3 the metadata, 4 the integers, 5 the booleans. Unlike
// FuzzDecodeCommit, the rest stays canonical, so many inputs are ones the
// fast decoder decodes itself and this explores its decisions more than
// encoding/json's errors.
func FuzzDecodeCommitFields(f *testing.F) {
	for _, seed := range []struct {
		slot uint8
		text string
	}{
		{0, "user_123"}, {0, `a\"b\\c\/d\n\u0041`}, {0, "ユーザー"}, {0, ""},
		{1, "10"}, {1, "0.000000000000000001"}, {1, "1e3"}, {1, "123456789012345678901234567890.123456789012345678"},
		{2, "2026-03-14T09:00:00.5Z"}, {2, "0001-01-01T00:00:00Z"}, {2, "2024-02-29T23:59:59.999999999Z"},
		{3, `{"k":[1]}`}, {3, `{}`}, {3, `{"a":"\u00e9","b":[true,false,null,-1.5e-7]}`}, {3, `{"d":{"e":{"f":[[]]}}}`},
		{4, "100"}, {4, "-0"}, {4, "999999999999999999"}, {4, "1e2"}, {4, "-"}, {4, "1.0"},
		{5, "true"}, {5, "false"}, {5, "null"}, {5, "1"},
	} {
		f.Add(seed.slot, seed.text)
	}
	f.Fuzz(func(t *testing.T, slot uint8, text string) {
		v := fuzzFieldDefaults
		v[slot%uint8(len(v))] = text
		event, budget, grant, commit := fuzzFieldEvents(v)
		sameAsSlow(t, []byte(event))
		sameAsSlow(t, []byte(budget))
		sameAsSlow(t, []byte(grant))
		sameAsSlow(t, []byte(commit))
	})
}

// fuzzFieldDefaults are the canonical values of FuzzDecodeCommitFields's
// slots.
var fuzzFieldDefaults = [6]string{"user_123", "10", "2026-03-14T09:00:00.5Z", `{"k":[1]}`, "100", "true"}

// fuzzFieldEvents returns FuzzDecodeCommitFields's events and commit with
// the values v of its slots.
func fuzzFieldEvents(v [6]string) (event, budget, grant, commit string) {
	str, amount, at, meta, integer, boolean := v[0], v[1], v[2], v[3], v[4], v[5]
	event = `{"id":"e","type":"reserved","v":1,"at":"` + at + `","customer_id":"` + str + `",` +
		`"data":{"reservation_id":"r","agent_id":"a","units":` + amount + `,"expires_at":"2026-03-14T09:15:00Z",` +
		`"metadata":` + meta + `,"scope":{"` + str + `":"` + str + `","u":"v"},"counted_scopes":[{"dimension":"` + str +
		`","value":"x"}],"requested":` + amount + `,"in_overdraft":` + boolean + `,` +
		`"balance":{"period_start":"2026-03-01T00:00:00Z","limit":` + amount +
		`,"top_ups":0,"used":0,"reserved":` + amount + `,"remaining":870,"grants":` + amount + `}}}`
	budget = `{"id":"e2","type":"budget_set","v":1,"at":"0001-01-01T00:00:00Z","customer_id":"c",` +
		`"data":{"limit":1,"period":"m","thresholds":[` + amount + `,0.5],"agent_limits":{"` + str + `":` + amount +
		`,"b":2},"source":"admin","overdraft":` + amount + `,"scope_limits":[{"dimension":"` + str + `","limit":` + amount +
		`}],"max_concurrent_runs":` + integer + `,"balance":{}}}`
	grant = `{"id":"e3","type":"granted","v":1,"at":"` + at + `","customer_id":"c","data":{"grant_id":"` + str +
		`","units":` + amount + `,"priority":` + integer + `,"source":"s","effective_at":"` + at + `","balance":{}}}`
	commit = `{"v":1,"id":"` + str + `","writer":"0","at":"` + at + `","events":[` + event + `,` + budget + `,` + grant + `]}`
	return event, budget, grant, commit
}

// The canonical events FuzzDecodeCommitFields edits are ones the fast
// decoder decodes itself, so the fuzzer explores its decisions.
func TestFuzzFieldEventsAreDecodedFast(t *testing.T) {
	event, budget, grant, commit := fuzzFieldEvents(fuzzFieldDefaults)
	for _, e := range []string{event, budget, grant} {
		if _, err := fastDecode([]byte(e)); err != nil {
			t.Errorf("fastDecode(%s): %v", e, err)
		}
	}
	if _, err := fastDecodeCommit([]byte(commit), nil); err != nil {
		t.Errorf("fastDecodeCommit(%s): %v", commit, err)
	}
}

// TestUnitsMemoHoldsNoPointer checks unitsMemoTextMax: an amount whose
// text is that short has its coefficient inline, so the copies the memo
// hands out share no memory.
func TestUnitsMemoHoldsNoPointer(t *testing.T) {
	for _, s := range []string{
		"99999999999999999999999999999.99999999", "0.100000000000000000000000000000000000", "1e30", "123.45",
		"9999999999999999999999999999.999999999", "1000000000000000000000000000000",
	} {
		if len(s) > unitsMemoTextMax {
			t.Fatalf("test amount %s is longer than unitsMemoTextMax", s)
		}
		u, err := parseTotal(s)
		if err != nil {
			t.Fatalf("parseTotal(%s): %v", s, err)
		}
		if inner := reflect.ValueOf(u.d.Coeff).FieldByName("_inner"); !inner.IsNil() {
			t.Errorf("parseTotal(%s) holds a pointer to its coefficient", s)
		}
	}
}

// TestFastDecodeUnitsMemo decodes a commit whose amounts repeat, with
// more distinct amounts than the memo holds and some too long for it.
func TestFastDecodeUnitsMemo(t *testing.T) {
	amounts := []string{"0", "1", "10", "0.5", "1000", "870", "120", "1e3", "1000.0", "0.000000000000000001",
		"123456789012345678901234567890.123456789012345678", "999999999999999999999999999999.9"}
	var events []string
	for i := range 40 {
		a := func(k int) string { return amounts[(i*7+k*5)%len(amounts)] }
		events = append(events, strings.NewReplacer(`"limit":1000`, `"limit":`+a(0), `"used":120`, `"used":`+a(1),
			`"units":10`, `"units":`+a(2), `"remaining":870`, `"remaining":`+a(3), `"top_ups":0`, `"top_ups":`+a(4)).
			Replace(fastTestEvent))
	}
	b := []byte(`{"v":1,"id":"c","writer":"0","at":"2026-03-14T09:00:00Z","events":[` + strings.Join(events, ",") + `]}`)
	if _, err := fastDecodeCommit(b, nil); err != nil {
		t.Fatalf("fastDecodeCommit: %v", err)
	}
	sameAsSlow(t, b)
}

// mixedCommit returns a commit of random canonical events of every type
// (without \u escapes), so that, unlike BenchmarkDecodeCommit's, its
// amounts and strings vary as in a real log, and rarely repeat. With plain
// set, only the types and fields of logs from before grants and scopes.
func mixedCommit(b *testing.B, eventsN int, small, plain bool) []byte {
	b.Helper()
	var enc CommitEncoder
	r := rand.New(rand.NewSource(4))
	g := &eventGen{r: r, small: small, plain: plain}
	enc.Reset("c", "0", time.Now())
	for range eventsN {
		e, err := Encode(g.envelope())
		if err != nil {
			b.Fatal(err)
		}
		enc.Add(e)
	}
	body := append([]byte(nil), enc.Bytes()...)
	if _, err := fastDecodeCommit(body, nil); err != nil {
		b.Fatal("the fast decoder does not handle the benchmark's commit")
	}
	return body
}

func benchmarkDecode(b *testing.B, body []byte, eventsN int, decode func([]byte) (*Commit, error)) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decode(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*eventsN)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeCommitMixed decodes mixed commits with amounts of up to
// 6+6 digits ("small") and of up to 30+18 digits ("large", where apd's
// big-number parsing dominates), with DecodeCommit and encoding/json alone:
// "plain" commits hold only the types and fields of logs from before grants
// and scopes (replay of an old log must not get slower), the others every
// type and field.
func BenchmarkDecodeCommitMixed(b *testing.B) {
	for _, kind := range []string{"plain", "all"} {
		for _, size := range []string{"small", "large"} {
			body := mixedCommit(b, 100, size == "small", kind == "plain")
			name := kind + "/" + size
			b.Run(name+"/fast", func(b *testing.B) { benchmarkDecode(b, body, 100, DecodeCommit) })
			b.Run(name+"/encoding-json", func(b *testing.B) { benchmarkDecode(b, body, 100, decodeCommitSlow) })
		}
	}
}

// TestArenaReuse decodes commits of many events of the types an Arena
// holds, one after another in one arena: each commit decodes to what
// encoding/json gives even though its structs are the previous commit's,
// reused (their addresses repeat), and Detach's copy of an event keeps
// its value through a Reset.
func TestArenaReuse(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	types := []Type{TypeReserved, TypeDenied, TypeRecorded, TypeReleased, TypeExpired}
	arena := new(Arena)
	seen := map[Data]bool{}
	reused := 0
	for i := range 6 {
		g := &eventGen{r: r, plain: true}
		var enc CommitEncoder
		enc.Reset(g.commitStr(), g.commitStr(), g.time())
		for k := range 40 + 30*i { // past arenaChunkMax of each type
			typ := types[k%len(types)]
			b, err := Encode(&Envelope{ID: g.str(), Type: typ, V: Version, At: g.time(), CustomerID: g.str(), Data: g.data(typ)})
			if err != nil {
				t.Fatal(err)
			}
			enc.Add(b)
		}
		body := append([]byte(nil), enc.Bytes()...)
		want, err := decodeCommitSlow(body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fastDecodeCommit(body, arena)
		if err != nil {
			t.Fatalf("commit %d not decoded fast: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("commit %d decoded in a reused arena differs:\n got %#v\nwant %#v", i, got, want)
		}
		for _, e := range got.Events {
			if seen[e.Data] {
				reused++
			}
			seen[e.Data] = true
		}
		var kept []Data // one event of each type, copied out
		for k := range types {
			if kept = append(kept, Detach(got.Events[k].Data)); kept[k] == got.Events[k].Data {
				t.Fatalf("Detach(%T) returned the arena's own struct", kept[k])
			}
		}
		arena.Reset()
		for k := range types {
			if reflect.DeepEqual(got.Events[k].Data, want.Events[k].Data) {
				t.Fatalf("Reset left the arena's %T as it was", got.Events[k].Data)
			}
			if !reflect.DeepEqual(kept[k], want.Events[k].Data) {
				t.Fatalf("Detach's copy changed by Reset:\n got %#v\nwant %#v", kept[k], want.Events[k].Data)
			}
		}
	}
	if reused == 0 {
		t.Fatal("no struct was reused across commits")
	}
	// After a commit of one event of each type, the arena keeps one array
	// of each (two of envelopes: 4 and 8), not the arrays the large
	// commits before it needed.
	g := &eventGen{r: r, plain: true}
	var enc CommitEncoder
	enc.Reset(g.commitStr(), g.commitStr(), g.time())
	for _, typ := range types {
		b, err := Encode(&Envelope{ID: g.str(), Type: typ, V: Version, At: g.time(), CustomerID: g.str(), Data: g.data(typ)})
		if err != nil {
			t.Fatal(err)
		}
		enc.Add(b)
	}
	if _, err := fastDecodeCommit(enc.Bytes(), arena); err != nil {
		t.Fatal(err)
	}
	arena.Reset()
	for name, n := range map[string][2]int{"envelopes": {len(arena.envelopes.arrays), 2}, "reserved": {len(arena.reserved.arrays), 1},
		"denied": {len(arena.denied.arrays), 1}, "recorded": {len(arena.recorded.arrays), 1},
		"released": {len(arena.released.arrays), 1}, "expired": {len(arena.expired.arrays), 1}} {
		if n[0] != n[1] {
			t.Errorf("after a commit of %d events the arena keeps %d arrays of %s, want %d", len(types), n[0], name, n[1])
		}
	}
}
