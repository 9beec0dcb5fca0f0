package events_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agentbill/agentbill/events"
)

// b64 is the token encoding docs/PROTOCOL.md names ("Customer IDs and
// subject tokens"): unpadded base64url.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// checkTokenSafe fails if a token could change a subject's shape.
func checkTokenSafe(t *testing.T, id, tok string) {
	t.Helper()
	if tok == "" {
		t.Errorf("Token(%q) is empty", id)
	}
	if i := strings.IndexFunc(tok, func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f || r >= utf8.RuneSelf
	}); i >= 0 {
		t.Errorf("Token(%q) = %q contains %q at %d", id, tok, tok[i], i)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		id        string
		wantToken string // "" to check only the round trip
	}{
		{"plain", "user_123", "user_123"},
		{"plain single byte", "a", "a"},
		{"plain with dash", "Cust-01_x", "Cust-01_x"},
		{"plain 64 bytes", strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{"plain alphabet 65 bytes", strings.Repeat("a", 65), "~" + b64(strings.Repeat("a", 65))},
		{"dot", "a.b", "~YS5i"},
		{"dots", "acme.corp.eu", "~" + b64("acme.corp.eu")},
		{"star", "a*", "~" + b64("a*")},
		{"greater", "a>", "~" + b64("a>")},
		{"wildcard only", ">", "~" + b64(">")},
		{"space", "acme corp", "~" + b64("acme corp")},
		{"tilde", "~abc", "~" + b64("~abc")},
		{"looks encoded", "~YS5i", "~" + b64("~YS5i")},
		{"unicode", "ünïcødé 用户", "~" + b64("ünïcødé 用户")},
		{"emoji", "🚀", "~" + b64("🚀")},
		{"slash and plus", "a/b+c", "~" + b64("a/b+c")},
		{"128 bytes plain alphabet", strings.Repeat("z", 128), ""},
		{"128 bytes mixed", strings.Repeat("a.", 64), ""},
		{"128 bytes unicode", strings.Repeat("é", 64), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := events.ValidateCustomerID(tt.id); err != nil {
				t.Fatalf("ValidateCustomerID(%q): %v", tt.id, err)
			}
			tok := events.Token(tt.id)
			if tt.wantToken != "" && tok != tt.wantToken {
				t.Errorf("Token(%q) = %q, want %q", tt.id, tok, tt.wantToken)
			}
			checkTokenSafe(t, tt.id, tok)
			got, err := events.ParseToken(tok)
			if err != nil {
				t.Fatalf("ParseToken(%q): %v", tok, err)
			}
			if got != tt.id {
				t.Errorf("ParseToken(Token(%q)) = %q, want %q", tt.id, got, tt.id)
			}
		})
	}
}

// TestTokenRandomIDs round-trips random valid IDs, and checks that distinct
// IDs never share a token.
func TestTokenRandomIDs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("aZ09_-.*> ~/+=é用🚀\u00a0\u2028")
	seen := make(map[string]string)
	for i := 0; i < 5000; i++ {
		var b strings.Builder
		n := 1 + rng.IntN(40)
		for j := 0; j < n; j++ {
			r := alphabet[rng.IntN(len(alphabet))]
			if b.Len()+utf8.RuneLen(r) > events.CustomerIDBytesMax {
				break
			}
			b.WriteRune(r)
		}
		id := b.String()
		if events.ValidateCustomerID(id) != nil {
			continue
		}
		tok := events.Token(id)
		checkTokenSafe(t, id, tok)
		got, err := events.ParseToken(tok)
		if err != nil || got != id {
			t.Fatalf("ParseToken(Token(%q)) = %q, %v; want %q", id, got, err, id)
		}
		if other, ok := seen[tok]; ok && other != id {
			t.Fatalf("Token(%q) = Token(%q) = %q", id, other, tok)
		}
		seen[tok] = id
	}
}

func TestParseTokenRejects(t *testing.T) {
	tests := []struct {
		name string
		tok  string
	}{
		{"empty", ""},
		{"tilde alone", "~"},
		{"encoded plain ID", "~" + b64("abc")},
		{"encoded plain ID with dash", "~" + b64("user_123")},
		{"padded base64", "~YS5iYw=="},
		{"one pad", "~" + b64("a.bc") + "="},
		{"standard base64 alphabet", "~" + base64.RawStdEncoding.EncodeToString([]byte("\xfb\xff"))},
		{"invalid base64", "~!!!"},
		{"impossible length", "~YS5iY"},
		{"non-zero trailing bits", "~YS5iYx"},
		{"dot in token", "a.b"},
		{"star", "*"},
		{"greater", ">"},
		{"space", "a b"},
		{"unicode", "é"},
		{"plain 65 bytes", strings.Repeat("a", 65)},
		{"double tilde", "~~" + b64("a.b")},
		{"tilde in the middle", "a~b"},
		{"control character", "~" + b64("a\nb")},
		{"NUL", "~" + b64("a\x00b")},
		{"DEL", "~" + b64("a\x7fb")},
		{"C1 control", "~" + b64("a\u0085b")},
		{"invalid UTF-8", "~" + b64("\xff\xfe")},
		{"truncated UTF-8", "~" + b64("ab\xe2\x82")},
		{"129 bytes", "~" + b64(strings.Repeat("a.", 64)+"x")},
		{"1000 bytes", "~" + b64(strings.Repeat("é", 500))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := events.ParseToken(tt.tok)
			if err == nil {
				t.Fatalf("ParseToken(%q) = %q, want an error", tt.tok, got)
			}
			if !errors.Is(err, events.ErrInvalidID) {
				t.Errorf("ParseToken(%q) error %v does not wrap ErrInvalidID", tt.tok, err)
			}
		})
	}
}

func TestValidateCustomerID(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		wantOK bool
	}{
		{"plain", "c1", true},
		{"128 bytes", strings.Repeat("x", 128), true},
		{"unicode", "用户", true},
		{"empty", "", false},
		{"129 bytes", strings.Repeat("x", 129), false},
		{"129 bytes unicode", strings.Repeat("é", 64) + "x", false},
		{"newline", "a\nb", false},
		{"tab", "a\tb", false},
		{"NUL", "\x00", false},
		{"invalid UTF-8", "\xc3\x28", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := events.ValidateCustomerID(tt.id)
			if got := err == nil; got != tt.wantOK {
				t.Errorf("ValidateCustomerID(%q) = %v, want ok %v", tt.id, err, tt.wantOK)
			}
			if err != nil && !errors.Is(err, events.ErrInvalidID) {
				t.Errorf("error %v does not wrap ErrInvalidID", err)
			}
		})
	}
}

func TestParseRequestSubject(t *testing.T) {
	tests := []struct {
		subject   string
		wantOp    events.Op
		wantToken string
		wantAdmin bool
		wantErr   bool
	}{
		{subject: "agentbill.v1.preflight.user_123", wantOp: events.OpPreflight, wantToken: "user_123"},
		{subject: "agentbill.v1.record.c", wantOp: events.OpRecord, wantToken: "c"},
		{subject: "agentbill.v1.status.~YS5i", wantOp: events.OpStatus, wantToken: "~YS5i"},
		{subject: "agentbill.admin.v1.budget.c1", wantOp: events.OpBudget, wantToken: "c1", wantAdmin: true},
		{subject: "agentbill.admin.v1.topup.~YS5i", wantOp: events.OpTopUp, wantToken: "~YS5i", wantAdmin: true},
		// The op is not checked here; the caller looks it up.
		{subject: "agentbill.v1.nosuchop.c1", wantOp: "nosuchop", wantToken: "c1"},
		{subject: "agentbill.v1.preflight", wantErr: true},
		{subject: "agentbill.v1.preflight.", wantErr: true},
		{subject: "agentbill.v1..c1", wantErr: true},
		{subject: "agentbill.v1.", wantErr: true},
		{subject: "agentbill.v1.preflight.a.b", wantErr: true},
		{subject: "agentbill.v1.preflight.c1.", wantErr: true},
		{subject: "agentbill.v2.preflight.c1", wantErr: true},
		{subject: "agentbill.admin.v1.budget", wantErr: true},
		{subject: "agentbill.events.c1.reserved", wantErr: true},
		{subject: "xagentbill.v1.preflight.c1", wantErr: true},
		{subject: "", wantErr: true},
		{subject: "agentbill.v1.preflight." + strings.Repeat("a.", 1000), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			op, tok, admin, err := events.ParseRequestSubject(tt.subject)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseRequestSubject(%q) = %q, %q, %v; want an error", tt.subject, op, tok, admin)
				}
				if !errors.Is(err, events.ErrInvalidID) {
					t.Errorf("error %v does not wrap ErrInvalidID", err)
				}
				if len(err.Error()) > 200 {
					t.Errorf("error is %d bytes, want the subject truncated", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequestSubject(%q): %v", tt.subject, err)
			}
			if op != tt.wantOp || tok != tt.wantToken || admin != tt.wantAdmin {
				t.Errorf("ParseRequestSubject(%q) = %q, %q, %v; want %q, %q, %v",
					tt.subject, op, tok, admin, tt.wantOp, tt.wantToken, tt.wantAdmin)
			}
		})
	}
}

func TestRequestSubjectRoundTrip(t *testing.T) {
	ops := []events.Op{events.OpPreflight, events.OpRecord, events.OpRelease, events.OpExtend,
		events.OpStatus, events.OpBudget, events.OpTopUp}
	ids := []string{"c1", "a.b", "acme corp", "用户", strings.Repeat("q", 128)}
	for _, op := range ops {
		for _, id := range ids {
			subject := events.RequestSubject(op, id)
			wantPrefix := events.RequestPrefix
			if op.IsAdmin() {
				wantPrefix = events.AdminPrefix
			}
			if !strings.HasPrefix(subject, wantPrefix) {
				t.Errorf("RequestSubject(%q, %q) = %q, want prefix %q", op, id, subject, wantPrefix)
			}
			gotOp, tok, admin, err := events.ParseRequestSubject(subject)
			if err != nil {
				t.Fatalf("ParseRequestSubject(%q): %v", subject, err)
			}
			gotID, err := events.ParseToken(tok)
			if err != nil {
				t.Fatalf("ParseToken(%q): %v", tok, err)
			}
			if gotOp != op || gotID != id || admin != op.IsAdmin() {
				t.Errorf("round trip of %q: got %q, %q, admin %v; want %q, %q, admin %v",
					subject, gotOp, gotID, admin, op, id, op.IsAdmin())
			}
		}
	}
}

func TestEventSubjectAndFilter(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"subject plain", events.EventSubject("c1", events.TypeReserved), "agentbill.events.c1.reserved"},
		{"subject encoded", events.EventSubject("a.b", events.TypeBudgetExhausted), "agentbill.events.~YS5i.budget_exhausted"},
		{"filter all", events.EventFilter("", ""), "agentbill.events.*.*"},
		{"filter customer", events.EventFilter("c1", ""), "agentbill.events.c1.*"},
		{"filter type", events.EventFilter("", events.TypeBudgetExhausted), "agentbill.events.*.budget_exhausted"},
		{"filter both encoded", events.EventFilter("a b", events.TypeDenied), "agentbill.events.~" + b64("a b") + ".denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	for _, ty := range events.Types {
		s := events.EventSubject("x.y", ty)
		if !strings.HasPrefix(s, events.EventSubjectPrefix) {
			t.Errorf("EventSubject(%q) = %q, want prefix %q", ty, s, events.EventSubjectPrefix)
		}
		if got, want := strings.Count(s, "."), 3; got != want {
			t.Errorf("EventSubject(%q) = %q has %d dots, want %d", ty, s, got, want)
		}
	}
}

// sampleEvents returns one event of every type with every field set
// (TestSampleEventsCoverEveryType checks it), so that the round trips
// cover them; the amounts need not add up.
func sampleEvents(t *testing.T) []*events.Envelope {
	t.Helper()
	u := func(s string) events.Units { return mustUnits(t, s) }
	up := func(s string) *events.Units { v := u(s); return &v }
	at := time.Date(2026, 3, 10, 12, 30, 45, 123456789, time.UTC)
	n1200, n400, n100, fee := int64(1200), int64(400), int64(100), events.MustParseUnits("0.01")
	bal := events.Balance{
		PeriodStart: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		Limit:       u("150.5"),
		TopUps:      u("50.5"),
		Used:        u("40.25"),
		Reserved:    u("10"),
		Remaining:   u("100.25"),
		Grants:      u("30"),
		GrantsUsed:  u("20"),
		Overdraft:   u("25"),
		Overdrawn:   u("0.5"),
	}
	req := events.Request{IdempotencyKey: "key-1", RequestHash: "00112233445566778899aabbccddeeff"}
	scope := map[string]string{"team": "research", "user": "alice"}
	counted := []events.ScopeRef{{Dimension: "team", Value: "research"}}
	data := []events.Data{
		&events.BudgetSet{Limit: u("100"), Period: "month", Thresholds: []events.Units{u("0.5"), u("0.8")},
			UpgradeURL: "https://example.com/up", AgentLimits: map[string]events.Units{"a1": u("10"), "a2": u("0.5")},
			Source: "admin", Rollover: "all", PriceList: "pro", Overdraft: up("25"), ScopeLimits: []events.ScopeLimit{
				{Dimension: "team", Value: "research", Limit: u("60"), Period: "month"},
				{Dimension: "user", Value: "alice", Limit: u("20.5"), Period: "day"}},
			MaxRuns: 10, MaxRunsPerAgent: 3, RateLimit: &events.RateLimit{PerSecond: events.MustParseUnits("2.5"), Burst: 5},
			Request: req, Balance: bal},
		&events.ToppedUp{Units: u("50.5"), Note: "thanks", Request: req, Balance: bal},
		&events.Reserved{ReservationID: "r1", AgentID: "a1", Units: u("10"), TaskRef: "t1", TaskCeiling: up("25"),
			ExpiresAt: at.Add(15 * time.Minute), Metadata: json.RawMessage(`{"run":"x","n":1}`), Scope: scope,
			CountedScopes: counted, Requested: u("12"), InOverdraft: true,
			Pricing: &events.Pricing{List: "default", Version: "v1", Model: "m", Total: u("12")}, MaxOutputTokens: 400,
			Request: req, Balance: bal},
		&events.Denied{AgentID: "a1", Requested: u("1000"), Reason: "scope_limit_exceeded",
			Message: "scope team=research has 10 units left in this month; 1000 requested", TaskRef: "t1",
			UpgradeURL: "https://example.com/up", Scope: scope, RefusedScope: &counted[0], Request: req, Balance: bal},
		&events.Recorded{AgentID: "a1", ReservationID: "r1", HeldUnits: u("10"), Units: u("12.5"), Released: u("0.5"),
			Overage: u("2.5"), TaskRef: "t1", Metadata: json.RawMessage(`{"model":"m"}`), Scope: scope, CountedScopes: counted,
			FundedBy: []events.GrantDraw{{GrantID: "g1", Units: u("2")}, {GrantID: "g2", Units: u("0.5")}},
			Usage: &events.Usage{Model: "m", Provider: "p", InputTokens: &n1200, OutputTokens: &n400, CacheReadTokens: &n100,
				CacheWriteTokens: &n100, CacheWrite1hTokens: &n100, ReasoningTokens: &n100, ServiceTier: "flex"},
			Pricing: &events.Pricing{List: "default", Version: "v1", Model: "m", Provider: "p", ServiceTier: "flex",
				AboveInputTokens: 1000, Lines: []events.PriceLine{{Kind: events.KindInput, Tokens: 1000, Rate: u("3")}},
				RequestFee: &fee, Total: u("12.5")},
			Unpriced: "no reason: both set in a sample only", Request: req, Balance: bal},
		&events.Released{ReservationID: "r1", AgentID: "a1", Units: u("10"), Cause: events.CauseRunFailed, Request: req, Balance: bal},
		&events.Expired{ReservationID: "r1", AgentID: "a1", Units: u("10"), ExpiresAt: at.Add(-time.Second), Balance: bal},
		&events.Extended{ReservationID: "r1", AgentID: "a1", ExpiresAt: at.Add(time.Hour), Request: req, Balance: bal},
		&events.ThresholdCrossed{Fraction: u("0.8"), Balance: bal},
		&events.BudgetExhausted{Trigger: events.TriggerRefused, AgentID: "a1", UpgradeURL: "https://example.com/up", Balance: bal},
		&events.BudgetRestored{Trigger: events.TriggerToppedUp, Balance: bal},
		&events.Granted{GrantID: "g1", Units: u("30"), Priority: 10, Source: events.SourcePurchase, Note: "pack",
			EffectiveAt: at, ExpiresAt: at.Add(30 * 24 * time.Hour), Request: req, Balance: bal},
		&events.GrantExpired{GrantID: "g1", Units: u("30"), Remaining: u("4.5"), ExpiresAt: at.Add(-time.Second), Balance: bal},
		&events.OverdraftStarted{AgentID: "a1", Overdraft: u("25"), Balance: bal},
		&events.PricesSet{PriceList: "default", Version: "v1", Digest: "d1", Models: 1, Body: json.RawMessage(`{"list":"default"}`)},
	}
	var out []*events.Envelope
	for i, d := range data {
		cid := "acme.corp"
		if d.EventType() == events.TypePricesSet {
			cid = "" // a price list concerns no customer
		}
		out = append(out, &events.Envelope{
			ID: fmt.Sprintf("0195b2a0-0000-7000-8000-%012d", i), Type: d.EventType(), V: events.Version,
			At: at, CustomerID: cid, Data: d,
		})
	}
	return out
}

func TestSampleEventsCoverEveryType(t *testing.T) {
	have := make(map[events.Type]bool)
	for _, e := range sampleEvents(t) {
		have[e.Type] = true
		if events.BalanceRef(e.Data) == nil && e.Type != events.TypePricesSet { // no customer, no balance
			t.Errorf("BalanceRef(%T) = nil", e.Data)
		}
	}
	for _, ty := range events.Types {
		if !have[ty] {
			t.Errorf("no sample event of type %q", ty)
		}
	}
	for _, e := range sampleEvents(t) {
		for _, name := range zeroFields(reflect.ValueOf(e.Data).Elem()) {
			t.Errorf("sample %s event leaves %s zero", e.Type, name)
		}
	}
	if got, want := len(have), len(events.Types); got != want {
		t.Errorf("sample has %d types, events.Types has %d", got, want)
	}
}

// zeroFields names the fields of a struct that are zero, looking into
// embedded structs and the balance.
func zeroFields(v reflect.Value) []string {
	var out []string
	for i := range v.NumField() {
		f, ft := v.Field(i), v.Type().Field(i)
		if ft.Anonymous || ft.Type == reflect.TypeFor[events.Balance]() {
			out = append(out, zeroFields(f)...)
			continue
		}
		if f.IsZero() {
			out = append(out, ft.Name)
		}
	}
	return out
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, e := range sampleEvents(t) {
		t.Run(string(e.Type), func(t *testing.T) {
			b, err := events.Encode(e)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			back, err := events.Decode(b)
			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if back.ID != e.ID || back.Type != e.Type || back.V != e.V || !back.At.Equal(e.At) || back.CustomerID != e.CustomerID {
				t.Errorf("envelope = %+v, want %+v", back, e)
			}
			if got, want := back.Data.EventType(), e.Type; got != want {
				t.Errorf("data type = %q, want %q", got, want)
			}
			again, err := events.Encode(back)
			if err != nil {
				t.Fatalf("Encode(decoded): %v", err)
			}
			if !bytes.Equal(again, b) {
				t.Errorf("re-encoded event differs:\n got %s\nwant %s", again, b)
			}
			if e.Type == events.TypePricesSet {
				return // no customer, no balance
			}
			if got, want := events.BalanceOf(back.Data).Remaining.String(), "100.25"; got != want {
				t.Errorf("decoded balance remaining = %s, want %s", got, want)
			}
		})
	}
}

// TestEncodeWireFields checks the envelope field names docs/PROTOCOL.md
// fixes ("Events").
func TestEncodeWireFields(t *testing.T) {
	e := sampleEvents(t)[2] // reserved
	b, err := events.Encode(e)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	want := map[string]string{
		"id":          `"0195b2a0-0000-7000-8000-000000000002"`,
		"type":        `"reserved"`,
		"v":           `1`,
		"at":          `"2026-03-10T12:30:45.123456789Z"`,
		"customer_id": `"acme.corp"`,
	}
	for k, v := range want {
		if got := string(m[k]); got != v {
			t.Errorf("field %q = %s, want %s", k, got, v)
		}
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(m["data"], &data); err != nil {
		t.Fatalf("data: %v", err)
	}
	for k, v := range map[string]string{"units": "10", "task_ceiling": "25", "reservation_id": `"r1"`, "agent_id": `"a1"`} {
		if got := string(data[k]); got != v {
			t.Errorf("data field %q = %s, want %s", k, got, v)
		}
	}
}

func TestEncodeRejectsMismatchedData(t *testing.T) {
	tests := []struct {
		name string
		e    *events.Envelope
	}{
		{"nil data", &events.Envelope{ID: "x", Type: events.TypeReserved, V: events.Version}},
		{"wrong type", &events.Envelope{ID: "x", Type: events.TypeReserved, V: events.Version, Data: &events.Denied{}}},
		{"empty type", &events.Envelope{ID: "x", V: events.Version, Data: &events.Denied{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := events.Encode(tt.e)
			if err == nil {
				t.Fatalf("Encode = %s, want an error", b)
			}
			if !errors.Is(err, events.ErrInvalidEvent) {
				t.Errorf("error %v does not wrap ErrInvalidEvent", err)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	valid, err := events.Encode(sampleEvents(t)[1]) // topped_up
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	edit := func(f func(m map[string]any)) string {
		t.Helper()
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(valid))
		d.UseNumber() // amounts stay exact text, never float64
		if err := d.Decode(&m); err != nil {
			t.Fatalf("json.Decode: %v", err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		return string(b)
	}
	data := func(m map[string]any) map[string]any { return m["data"].(map[string]any) }
	tests := []struct {
		name string
		in   string
	}{
		{"version 2", edit(func(m map[string]any) { m["v"] = 2 })},
		{"version 0", edit(func(m map[string]any) { m["v"] = 0 })},
		{"no version", edit(func(m map[string]any) { delete(m, "v") })},
		{"version as string", edit(func(m map[string]any) { m["v"] = "1" })},
		{"unknown type", edit(func(m map[string]any) { m["type"] = "refunded" })},
		{"empty type", edit(func(m map[string]any) { m["type"] = "" })},
		{"no type", edit(func(m map[string]any) { delete(m, "type") })},
		{"type case", edit(func(m map[string]any) { m["type"] = "Topped_Up" })},
		{"data not an object", edit(func(m map[string]any) { m["data"] = "x" })},
		{"no data", edit(func(m map[string]any) { delete(m, "data") })},
		{"negative amount", edit(func(m map[string]any) { data(m)["units"] = -1 })},
		{"amount above log bound", edit(func(m map[string]any) { data(m)["units"] = json.Number("1e31") })},
		{"null amount", edit(func(m map[string]any) { data(m)["units"] = nil })},
		{"bad time", edit(func(m map[string]any) { m["at"] = "yesterday" })},
		{"malformed JSON", string(valid[:len(valid)-1])},
		{"not JSON", "hello"},
		{"empty", ""},
		{"array", "[]"},
		{"null", "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := events.Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, want an error", tt.in, e)
			}
			if !errors.Is(err, events.ErrInvalidEvent) {
				t.Errorf("Decode error %v does not wrap ErrInvalidEvent", err)
			}
		})
	}
}
