package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
)

// requestEvents returns an empty event of every type that can answer a
// request (requestOf names an op for it).
func requestEvents() []events.Data {
	return []events.Data{&events.BudgetSet{}, &events.ToppedUp{}, &events.Reserved{}, &events.Denied{},
		&events.Recorded{}, &events.Released{}, &events.Extended{}, &events.Granted{}}
}

// TestRequestEventsAreEveryAnsweringType checks requestEvents against
// requestOf: every type it names an op for is listed, and only those.
func TestRequestEventsAreEveryAnsweringType(t *testing.T) {
	listed := make(map[events.Type]bool)
	for _, d := range requestEvents() {
		listed[d.EventType()] = true
	}
	for _, ty := range events.Types {
		if _, op := requestOf(dataOfType(t, ty)); (op != "") != listed[ty] {
			t.Errorf("%s: requestOf names op %q, listed in requestEvents: %v", ty, op, listed[ty])
		}
	}
}

// dataOfType returns an empty event of type ty, decoded from its JSON.
func dataOfType(t *testing.T, ty events.Type) events.Data {
	t.Helper()
	e, err := events.Decode([]byte(`{"id":"e","type":"` + string(ty) + `","v":1,"at":"2026-03-14T09:00:00Z","customer_id":"c","data":{}}`))
	if err != nil {
		t.Fatalf("Decode of an empty %s: %v", ty, err)
	}
	return e.Data
}

// Every event type that can answer a request round-trips through the
// snapshot's event codec with every field set, so a field added to an
// event without being added to the codec fails here.
func TestSnapshotEventCodecCoversEveryField(t *testing.T) {
	for _, d := range requestEvents() {
		t.Run(string(d.EventType()), func(t *testing.T) {
			fillEveryField(t, reflect.ValueOf(d).Elem(), 1)
			if _, op := requestOf(d); op == "" {
				t.Fatalf("requestOf(%T) names no op", d)
			}
			req, _ := requestOf(d)
			eventID := "event-1"
			switch v := d.(type) {
			case *events.Reserved:
				eventID = v.ReservationID
			case *events.Granted:
				eventID = v.GrantID
			}
			for _, flags := range []byte{0, idemSameKey, idemSameKey | idemIDIsEvent} {
				if flags&idemIDIsEvent != 0 && eventID == "event-1" {
					continue // the type has no ID of its own
				}
				flags |= idemFlags(d, "", "") & (idemDataExt | idemBalanceExt | idemPriced)
				if flags&idemDataExt == 0 && dataExt(d) {
					t.Fatalf("dataExt(%T) is false with every field set", d)
				}
				e := &snapWriter{}
				if err := e.eventData(d, flags); err != nil {
					t.Fatalf("eventData: %v", err)
				}
				r := &snapReader{r: bufio.NewReader(bytes.NewReader(e.b))}
				got := r.eventData(flags, req.IdempotencyKey, eventID)
				gotReq, _ := requestOf(got)
				if r.err != nil {
					t.Fatalf("read back: %v", r.err)
				}
				if !reflect.DeepEqual(got, d) || gotReq != req {
					t.Fatalf("flags %b: round trip differs:\n got %s\nwant %s", flags, encodeJSON(t, got), encodeJSON(t, d))
				}
			}
		})
	}
}

// Each field of each such event, set alone, survives a remembered request
// written and read back: a field that is written only behind a presence
// flag (idemDataExt, idemBalanceExt) but that the flag forgets is lost
// here.
func TestSnapshotEventCodecKeepsEachField(t *testing.T) {
	const key = "c1\x00k-1"
	for _, proto := range requestEvents() {
		full := reflect.New(reflect.TypeOf(proto).Elem()).Elem()
		fillEveryField(t, full, 1)
		for _, path := range leafFields(full.Type(), nil) {
			name := full.Type().FieldByIndex(path).Name
			t.Run(string(proto.EventType())+"/"+name, func(t *testing.T) {
				one := reflect.New(full.Type())
				one.Elem().FieldByIndex(path).Set(full.FieldByIndex(path))
				want := one.Interface().(events.Data)
				e := &snapWriter{}
				if err := writeIdemEntry(e, key, idemEntry{eventID: "event-1", data: want, period: PeriodMonth}); err != nil {
					t.Fatalf("writeIdemEntry: %v", err)
				}
				got, err := readIdemEntry(&snapReader{r: bufio.NewReader(bytes.NewReader(e.b))}, key)
				if err != nil {
					t.Fatalf("readIdemEntry: %v", err)
				}
				if !reflect.DeepEqual(got.data, want) || got.eventID != "event-1" || got.period != PeriodMonth {
					t.Fatalf("round trip differs:\n got %s\nwant %s", encodeJSON(t, got.data), encodeJSON(t, want))
				}
			})
		}
	}
}

// leafFields returns the index paths of a struct's fields, descending into
// struct fields (the embedded Request, Balance) as fillEveryField does.
func leafFields(rt reflect.Type, prefix []int) [][]int {
	var out [][]int
	for i := range rt.NumField() {
		path := append(slices.Clone(prefix), i)
		if ft := rt.Field(i).Type; ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() && ft != reflect.TypeFor[events.Units]() {
			out = append(out, leafFields(ft, path)...)
			continue
		}
		out = append(out, path)
	}
	return out
}

// fillEveryField sets every field of v to a distinct non-zero value, and
// fails on a field kind it does not know (so a new kind is noticed).
func fillEveryField(t *testing.T, v reflect.Value, seed int) int {
	t.Helper()
	units := reflect.TypeFor[events.Units]()
	for i := 0; i < v.NumField(); i++ {
		f, ft := v.Field(i), v.Type().Field(i)
		seed++
		switch {
		case ft.Type == units:
			f.Set(reflect.ValueOf(parsed(seed*125, 2)))
		case ft.Type == reflect.PointerTo(units):
			u := parsed(seed*10, 0)
			f.Set(reflect.ValueOf(&u))
		case ft.Type == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(time.Date(2026, 3, seed%28+1, 12, 0, seed, seed*1000, time.UTC)))
		case ft.Type == reflect.TypeFor[json.RawMessage]():
			f.Set(reflect.ValueOf(json.RawMessage(`{"n":1}`)))
		case ft.Type == reflect.TypeFor[[]events.Units]():
			f.Set(reflect.ValueOf([]events.Units{parsed(1, 1), parsed(seed, 2)}))
		case ft.Type == reflect.TypeFor[map[string]events.Units]():
			f.Set(reflect.ValueOf(map[string]events.Units{"a1": parsed(seed, 0), "a0": parsed(70, 0)}))
		case ft.Type == reflect.TypeFor[events.ScopeMap]():
			f.Set(reflect.ValueOf(events.ScopeMap{"user": fmt.Sprintf("u%d", seed), "team": "research"}))
		case ft.Type == reflect.TypeFor[[]events.ScopeRef]():
			// Not in any order: the codec keeps a list as it is.
			f.Set(reflect.ValueOf([]events.ScopeRef{{Dimension: "user", Value: fmt.Sprintf("u%d", seed)}, {Dimension: "team", Value: "r"}}))
		case ft.Type == reflect.TypeFor[*events.ScopeRef]():
			f.Set(reflect.ValueOf(&events.ScopeRef{Dimension: "team", Value: fmt.Sprintf("t%d", seed)}))
		case ft.Type == reflect.TypeFor[[]events.ScopeLimit]():
			f.Set(reflect.ValueOf([]events.ScopeLimit{
				{Dimension: "team", Value: "r", Limit: parsed(seed, 1), Period: "day"},
				{Dimension: "user", Value: fmt.Sprintf("u%d", seed), Limit: parsed(seed*3, 0), Period: "month"}}))
		case ft.Type == reflect.TypeFor[[]events.GrantDraw]():
			f.Set(reflect.ValueOf([]events.GrantDraw{{GrantID: "g2", Units: parsed(seed, 3)}, {GrantID: "g1", Units: parsed(5, 0)}}))
		case ft.Type == reflect.TypeFor[*events.Usage]():
			in, out := int64(seed*100), int64(seed)
			f.Set(reflect.ValueOf(&events.Usage{Model: "m", Provider: "p", InputTokens: &in, OutputTokens: &out, ServiceTier: "flex"}))
		case ft.Type == reflect.TypeFor[*events.Pricing]():
			fee := parsed(seed, 3)
			f.Set(reflect.ValueOf(&events.Pricing{List: "default", Version: "v1", Model: "m", AboveInputTokens: int64(seed),
				Lines: []events.PriceLine{{Kind: events.KindInput, Tokens: int64(seed), Rate: parsed(3, 0)}}, RequestFee: &fee,
				Total: parsed(seed, 6)}))
		case ft.Type.Kind() == reflect.Int64:
			f.SetInt(int64(seed * 1003))
		case ft.Type == reflect.TypeFor[*events.RateLimit]():
			// Within ledger.ValidateRateLimit's bounds: a snapshot reader checks them.
			f.Set(reflect.ValueOf(&events.RateLimit{PerSecond: parsed(seed, 1), Burst: seed%RateBurstMax + 1}))
		case ft.Type.Kind() == reflect.Bool:
			f.SetBool(true)
		case ft.Type.Kind() == reflect.Int:
			f.SetInt(int64(seed * 1001))
		case ft.Type.Kind() == reflect.String:
			f.SetString(ft.Name + "-" + string(rune('a'+seed%26)))
		case ft.Type.Kind() == reflect.Struct:
			seed = fillEveryField(t, f, seed)
		default:
			t.Fatalf("field %s of kind %s: teach fillEveryField and the snapshot codec", ft.Name, ft.Type)
		}
	}
	return seed
}

func encodeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parsed returns coeff * 10^-frac as events.ParseUnits gives it (reduced),
// the form a snapshot restores.
func parsed(coeff, frac int) events.Units {
	return events.MustParseUnits(events.NewUnits(int64(coeff), int32(-frac)).String())
}

// A window that lists a key twice is refused: a window holds each key once.
func TestSnapshotWindowRefusesARepeatedKey(t *testing.T) {
	at := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	e := &snapWriter{}
	e.uvarint(2)
	for range 2 {
		e.str("hold-1")
		e.time(at)
		if err := writeClosedEntry(e, "hold-1", closedEntry{customerID: "c1", status: StatusRecorded}); err != nil {
			t.Fatal(err)
		}
	}
	d := &snapReader{r: bufio.NewReader(bytes.NewReader(e.b))}
	if _, err := readWindow(d, ClosedReservationsMax, readClosedEntry); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("readWindow of a key listed twice: err %v, want listed twice", err)
	}
}

// checkRestored refuses a customer that breaks an invariant of grants or
// scopes, and accepts the customer each case breaks.
func TestSnapshotCheckRestoredGrantsAndScopes(t *testing.T) {
	team := events.ScopeRef{Dimension: "team", Value: "r"}
	valid := func() *Customer {
		at := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
		hold := &Reservation{ID: "h1", CustomerID: "c1", AgentID: "a1", Units: parsed(5, 0), ExpiresAt: at,
			Scope: scope{team, {Dimension: "user", Value: "u"}}}
		return &Customer{
			ID: "c1", Limit: parsed(100, 0), Period: PeriodMonth, Used: parsed(30, 0), Reserved: parsed(5, 0),
			agents: agents{one: &AgentUsage{Reserved: parsed(5, 0), id: "a1"}}, Open: []*Reservation{hold},
			Credits: &Credits{Used: parsed(10, 0), seq: 3, Grants: []*Grant{
				{ID: "g1", Units: parsed(20, 0), Remaining: parsed(10, 0), Priority: 1, seq: 2},
				{ID: "g2", Units: parsed(20, 0), Remaining: parsed(20, 0), Priority: 100, seq: 3},
			}},
			Scopes: map[events.ScopeRef]*ScopeUsage{team: {Limit: parsed(50, 0), Period: PeriodMonth, Reserved: parsed(5, 0)}},
		}
	}
	if err := checkRestoredAgents(valid()); err != nil {
		t.Fatalf("checkRestored of a valid customer: %v", err)
	}
	for _, tc := range []struct {
		name   string
		breaks func(c *Customer)
		want   string
	}{
		{"scope reserved is not its holds", func(c *Customer) { c.Scopes[team].Reserved = parsed(4, 0) }, "scope team=r"},
		{"scope reserved with no hold", func(c *Customer) { c.Open[0].Scope = nil }, "scope team=r"},
		{"grant remaining above units", func(c *Customer) { c.Credits.Grants[0].Remaining = parsed(21, 0) }, "grant g1"},
		{"grants funded more than used", func(c *Customer) { c.Credits.Used = parsed(31, 0) }, "grants funded"},
		{"grants out of order", func(c *Customer) { c.Credits.Grants[0].Priority = 101 }, "draw-down order"},
		{"grant counted twice", func(c *Customer) { c.Credits.Grants[1].Priority, c.Credits.Grants[1].seq = 1, 2 }, "draw-down order"},
		{"grant after the counter", func(c *Customer) { c.Credits.seq = 2 }, "number 3 of 2"},
		{"grant listed twice", func(c *Customer) { c.Credits.Grants[1].ID = "g1" }, "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.breaks(c)
			if err := checkRestoredAgents(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("checkRestored = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// checkRestoredAgents is checkRestored of a customer whose agents are
// already in its map.
func checkRestoredAgents(c *Customer) error {
	reserved := events.Zero
	for _, a := range c.Agents() {
		reserved = reserved.Add(a.Reserved)
	}
	return checkRestored(c, c.AgentCount(), reserved)
}

// The agents a snapshot lists for a customer become its agents when the
// slab is indexed, pointing into the slab (one alone, more in a map); one
// listed twice is refused.
func TestSnapshotIndexBuildsAgentMaps(t *testing.T) {
	sl := &restoredSlab{customers: []Customer{{ID: "c1"}, {ID: "c2"}, {ID: "c3"}}, agentEnd: []int{2, 2, 3},
		agentIDs: []string{"a", "b", "a"}, agentUse: []AgentUsage{{Used: parsed(1, 0)}, {Used: parsed(2, 0)}, {Used: parsed(3, 0)}}}
	s := NewState()
	if err := s.index(sl); err != nil {
		t.Fatal(err)
	}
	c1, c2, c3 := s.customers["c1"], s.customers["c2"], s.customers["c3"]
	if c1.AgentCount() != 2 || c1.Agent("a") != &sl.agentUse[0] || c1.Agent("b") != &sl.agentUse[1] ||
		c2.AgentCount() != 0 || c2.Agent("a") != nil || c3.AgentCount() != 1 || c3.Agent("a") != &sl.agentUse[2] ||
		c3.agents.many != nil || c3.Agent("b") != nil {
		t.Fatalf("agents: c1 %+v, c2 %+v, c3 %+v", c1.agents, c2.agents, c3.agents)
	}

	sl = &restoredSlab{customers: []Customer{{ID: "c1"}}, agentEnd: []int{2},
		agentIDs: []string{"a", "a"}, agentUse: make([]AgentUsage, 2)}
	if err := NewState().index(sl); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("an agent listed twice: err %v", err)
	}
}

// A flags byte with a bit no version defines is refused, in a customer
// and in a remembered request: the reader does not guess what follows.
func TestSnapshotRefusesUnknownFlags(t *testing.T) {
	c := &Customer{ID: "c1", Limit: parsed(1, 0), Period: PeriodDay}
	encode := func(exhausted bool) []byte {
		c.Exhausted = exhausted
		e := &snapWriter{}
		if err := e.customer(c); err != nil {
			t.Fatal(err)
		}
		return e.b
	}
	plain, flagged := encode(false), encode(true)
	at, differ := -1, 0
	for i := range min(len(plain), len(flagged)) {
		if plain[i] != flagged[i] {
			at, differ = i, differ+1
		}
	}
	if differ != 1 || len(plain) != len(flagged) {
		t.Fatalf("no single flags byte between %x and %x", plain, flagged)
	}
	plain[at] = 0x80
	d := &snapReader{r: bufio.NewReader(bytes.NewReader(plain))}
	if err := d.customer(&Customer{}, &restoredSlab{}); err == nil || !strings.Contains(err.Error(), "flags") {
		t.Errorf("customer with flags 0x80: err %v, want unknown flags", err)
	}

	e := &snapWriter{}
	if err := writeIdemEntry(e, "c1\x00k", idemEntry{eventID: "e1", data: &events.ToppedUp{}, period: PeriodDay}); err != nil {
		t.Fatal(err)
	}
	e.b[0] |= 0x80
	if _, err := readIdemEntry(&snapReader{r: bufio.NewReader(bytes.NewReader(e.b))}, "c1\x00k"); err == nil ||
		!strings.Contains(err.Error(), "flags") {
		t.Errorf("remembered request with flags 0x80: err %v, want unknown flags", err)
	}
}

// checkLazyRoundTrip checks that the lazy loader keeps exactly the bytes
// writeIdemEntry wrote for want (the walk consumes what readIdemEntry
// reads, no more, no less), and that they decode to want.
func checkLazyRoundTrip(t *testing.T, key string, want idemEntry) {
	t.Helper()
	e := &snapWriter{}
	if err := writeIdemEntry(e, key, want); err != nil {
		t.Fatalf("writeIdemEntry: %v", err)
	}
	written := bytes.Clone(e.b)
	if n := skipIdemFast(written); n != 0 && n != len(written) {
		t.Fatalf("skipIdemFast took %d bytes of the %d written", n, len(written))
	} else if n != 0 {
		lazyFastTaken++
	}
	e.b = append(e.b, 0xEE) // what follows an entry is not taken
	d := &snapReader{r: bufio.NewReader(bytes.NewReader(e.b))}
	got, err := new(lazyIdem).read(d, key)
	if err != nil {
		t.Fatalf("lazy read: %v", err)
	}
	if !bytes.Equal(got.raw, written) || got.data != nil {
		t.Fatalf("lazy read kept %x, want the %d bytes written %x", got.raw, len(written), written)
	}
	if next := d.byte(); next != 0xEE {
		t.Fatalf("lazy read left %#x next, want the byte after the entry", next)
	}
	dec, err := decodeRaw(got.raw, key)
	if err != nil {
		t.Fatalf("decodeRaw: %v", err)
	}
	if !reflect.DeepEqual(dec, want) {
		t.Fatalf("lazy round trip differs:\n got %s\nwant %s", encodeJSON(t, dec.data), encodeJSON(t, want.data))
	}
	again := &snapWriter{} // a lazy entry is written back as it was read
	if err := writeIdemEntry(again, key, got); err != nil || !bytes.Equal(again.b, written) {
		t.Fatalf("lazy entry written back: %x, %v; want %x", again.b, err, written)
	}
}

// lazyFastTaken counts the entries checkLazyRoundTrip saw skipIdemFast take.
var lazyFastTaken int

// Every answering event type, with every field set and with each field
// set alone, under every flag combination its IDs allow, survives the
// lazy loader.
func TestSnapshotLazyIdemEveryField(t *testing.T) {
	const key = "c1\x00k-1"
	for _, proto := range requestEvents() {
		full := reflect.New(reflect.TypeOf(proto).Elem())
		fillEveryField(t, full.Elem(), 1)
		t.Run(string(proto.EventType())+"/all", func(t *testing.T) {
			d := full.Interface().(events.Data)
			checkLazyRoundTrip(t, key, idemEntry{eventID: "event-1", data: d, period: PeriodWeek})
			req, _ := requestOf(d)
			setRequest(d, events.Request{IdempotencyKey: "k-1", RequestHash: req.RequestHash}) // idemSameKey
			eventID := "event-1"
			switch v := d.(type) {
			case *events.Reserved:
				eventID = v.ReservationID // idemIDIsEvent
			case *events.Granted:
				eventID = v.GrantID
			}
			checkLazyRoundTrip(t, key, idemEntry{eventID: eventID, data: d, period: PeriodNone})
		})
		for _, path := range leafFields(full.Elem().Type(), nil) {
			name := full.Elem().Type().FieldByIndex(path).Name
			t.Run(string(proto.EventType())+"/"+name, func(t *testing.T) {
				one := reflect.New(full.Elem().Type())
				one.Elem().FieldByIndex(path).Set(full.Elem().FieldByIndex(path))
				checkLazyRoundTrip(t, key, idemEntry{eventID: "event-1", data: one.Interface().(events.Data), period: PeriodMonth})
			})
		}
	}
	if lazyFastTaken < 50 {
		t.Errorf("skipIdemFast took %d entries, want the common ones (at least 50)", lazyFastTaken)
	}
}

// skipIdemFast accepts no entry the careful walk refuses, and takes the
// same bytes: random edits of entries it takes, checked against it.
func TestSnapshotLazyFastAcceptsOnlyWhatTheWalkDoes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 19))
	var entries [][]byte
	for _, proto := range requestEvents() {
		full := reflect.New(reflect.TypeOf(proto).Elem()).Elem()
		fillEveryField(t, full, 3)
		for _, path := range leafFields(full.Type(), nil) {
			one := reflect.New(full.Type())
			one.Elem().FieldByIndex(path).Set(full.FieldByIndex(path))
			e := &snapWriter{}
			if err := writeIdemEntry(e, "c\x00k", idemEntry{eventID: "e", data: one.Interface().(events.Data), period: PeriodDay}); err != nil {
				t.Fatal(err)
			}
			if skipIdemFast(e.b) == len(e.b) {
				entries = append(entries, e.b)
			}
		}
	}
	accepted := 0
	for range 50_000 {
		b := bytes.Clone(entries[rng.IntN(len(entries))])
		for range 1 + rng.IntN(3) {
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		}
		n := skipIdemFast(b)
		if n == 0 {
			continue
		}
		accepted++
		d := &snapReader{r: bufio.NewReader(bytes.NewReader(b))}
		d.recording = true
		d.skipIdemEntry()
		if d.err != nil || len(d.rec) != n {
			t.Fatalf("skipIdemFast took %d bytes of %x; the walk: %d bytes, err %v", n, b, len(d.rec), d.err)
		}
	}
	t.Logf("%d entries, %d edits taken", len(entries), accepted)
}

// The lazy loader refuses what readIdemEntry refuses: unknown flags, an
// unknown event kind, an unknown period, a bad amount, a truncated entry.
func TestSnapshotLazyIdemRefuses(t *testing.T) {
	e := &snapWriter{}
	u := parsed(5, 0)
	if err := writeIdemEntry(e, "c1\x00k", idemEntry{eventID: "e1", period: PeriodDay,
		data: &events.ToppedUp{Units: u, Note: "n", Request: events.Request{IdempotencyKey: "k", RequestHash: "h"}}}); err != nil {
		t.Fatal(err)
	}
	good := e.b
	amount := bytes.Index(good, []byte{1, '5'})    // the top-up's units: length 1, "5"
	kind := 1 + 1 + len("e1") + 1 + len(PeriodDay) // after the flags, the event ID and the period
	period := bytes.Index(good, []byte(PeriodDay))
	if amount < 0 || good[kind] != snapToppedUp || period < 0 {
		t.Fatalf("layout not as expected: %x", good)
	}
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
		want string
	}{
		{"flags", func(b []byte) []byte { b[0] |= 0x80; return b }, "flags"},
		{"kind", func(b []byte) []byte { b[kind] = 99; return b }, "kind"},
		{"period", func(b []byte) []byte { b[period] = 'x'; return b }, "unknown value"},
		{"amount", func(b []byte) []byte { b[amount+1] = 'x'; return b }, ""},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, "EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(bytes.Clone(good))
			_, err := new(lazyIdem).read(&snapReader{r: bufio.NewReader(bytes.NewReader(b))}, "c1\x00k")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// A remembered request is kept as its snapshot bytes from the moment it
// is applied, not as its decoded event (which made much of a replay's
// heap), and is answered from them. An event whose lists are past the
// snapshot's bounds is kept decoded, as a copy (the replay reuses the
// struct it applied: events.Arena), answers all the same, and the
// snapshot refuses it as it did before.
func TestRememberKeepsBytes(t *testing.T) {
	s := NewState()
	at := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	apply := func(id string, d events.Data) {
		s.Apply(&events.Envelope{ID: id, CustomerID: "c1", At: at, Data: d})
		at = at.Add(time.Second)
	}
	top := &events.ToppedUp{Units: parsed(5, 0), Note: "n", Request: events.Request{IdempotencyKey: "k1", RequestHash: "h1"}}
	apply("e1", top)
	e, ok := s.idem.get(idemKey("c1", "k1"))
	if !ok || e.raw == nil || e.data != nil || e.eventID != "" {
		t.Fatalf("remembered top-up: %+v, %v; want only its bytes", e, ok)
	}
	got, ok, err := s.remembered(idemKey("c1", "k1"))
	if err != nil || !ok || got.eventID != "e1" || !reflect.DeepEqual(got.data, top) || got.period != PeriodNone {
		t.Fatalf("remembered(k1) = %+v, %v, %v; want the top-up e1", got, ok, err)
	}

	wide := make(events.ScopeMap, ScopeDimensionsMax+1)
	for i := range ScopeDimensionsMax + 1 {
		wide[fmt.Sprintf("d%d", i)] = "v"
	}
	den := &events.Denied{Reason: "insufficient_budget", Scope: wide, Request: events.Request{IdempotencyKey: "k2", RequestHash: "h2"}}
	apply("e2", den)
	want := *den
	*den = events.Denied{} // as an arena's Reset does once the commit is applied
	e, ok = s.idem.get(idemKey("c1", "k2"))
	if !ok || e.raw != nil || e.data == events.Data(den) || !reflect.DeepEqual(e.data, &want) {
		t.Fatalf("remembered refusal past the bounds: %+v, %v; want a copy of its decoded event", e, ok)
	}
	if got, ok, err := s.remembered(idemKey("c1", "k2")); err != nil || !ok || !reflect.DeepEqual(got.data, &want) || got.eventID != "e2" {
		t.Fatalf("remembered(k2) = %+v, %v, %v; want the refusal e2", got, ok, err)
	}
	if err := s.WriteSnapshot(io.Discard, SnapshotMeta{}); err == nil || !strings.Contains(err.Error(), "past its bound") {
		t.Fatalf("snapshot of a remembered event past the bounds: err %v, want it refused", err)
	}
}
