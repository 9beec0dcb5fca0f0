package client

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// decodeReplyTwice is decodeReply as it was: the error probe, then out.
func decodeReplyTwice(data []byte, out any) error {
	var er struct {
		Error *ledger.Error `json:"error"`
	}
	if err := json.Unmarshal(data, &er); err != nil {
		return err
	}
	if er.Error != nil {
		return er.Error
	}
	return json.Unmarshal(data, out)
}

// The one-decode path must answer exactly as the two-decode one did.
func TestDecodeReplyMatchesTwoDecodes(t *testing.T) {
	for _, body := range []string{
		`{"approved":true,"message":"ok","reservation_id":"r1","reserved_units":"10","remaining_units":"-3"}`,
		`{"approved":false,"reason":"error","message":"an error\" here","reserved_units":0,"remaining_units":0}`,
		`{"error":{"code":"unavailable","message":"retry"}}`,
		`{"ERROR":{"code":"unavailable","message":"retry"}}`,
		`{"Error":{"code":"internal","message":"x"},"approved":true}`,
		`{"\u0065rror":{"code":"internal","message":"escaped key"}}`,
		`{"error":null,"approved":true,"message":"m","reserved_units":"1","remaining_units":"1"}`,
		`{"approved":true,"reserved_units":"x"}`,
		`{"approved":tru`,
		`[]`,
		``,
	} {
		var got, want ledger.PreflightReply
		gotErr, wantErr := decodeReply([]byte(body), &got), decodeReplyTwice([]byte(body), &want)
		var gle, wle *ledger.Error
		if errors.As(gotErr, &gle) != errors.As(wantErr, &wle) || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%s: got error %v, want %v", body, gotErr, wantErr)
			continue
		}
		if gle != nil && *gle != *wle {
			t.Errorf("%s: got %+v, want %+v", body, *gle, *wle)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", body, got, want)
		}
	}
}

// FuzzDecodeReply checks the same on any body.
func FuzzDecodeReply(f *testing.F) {
	f.Add([]byte(`{"approved":true,"message":"ok","reserved_units":"10","remaining_units":"-3"}`))
	f.Add([]byte(`{"eRRor":{"code":"unavailable","message":"retry"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var got, want ledger.RecordReply
		gotErr, wantErr := decodeReply(body, &got), decodeReplyTwice(body, &want)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: got error %v, want %v", body, gotErr, wantErr)
		}
		var gle, wle *ledger.Error
		if errors.As(gotErr, &gle) != errors.As(wantErr, &wle) || gle != nil && *gle != *wle {
			t.Fatalf("%q: got %v, want %v", body, gotErr, wantErr)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %+v, want %+v", body, got, want)
		}
	})
}

func TestMayHoldError(t *testing.T) {
	for _, c := range []struct {
		body string
		want bool
	}{
		{`{"approved":true}`, false},
		{`{"error":{}}`, true},
		{`{"ErRoR":1}`, true},
		{`{"a":"\n"}`, true},
		{`{"errors":1}`, false},
		{`{"terror":1}`, true}, // not the key, but cheap to send the long way
	} {
		if got := mayHoldError([]byte(c.body)); got != c.want {
			t.Errorf("mayHoldError(%s) = %v, want %v", c.body, got, c.want)
		}
	}
}

// replySamples are replies as the writer writes them (ledger.AppendReply),
// and a few it does not.
func replySamples(t testing.TB) [][]byte {
	t.Helper()
	exp := time.Date(2026, 12, 3, 14, 0, 0, 123_000_000, time.UTC)
	var units, neg events.Units
	var rem events.Signed
	for _, c := range []struct {
		s string
		v json.Unmarshaler
	}{{"10.5", &units}, {"1000000000000", &neg}, {"-3.25", &rem}} {
		if err := c.v.UnmarshalJSON([]byte(c.s)); err != nil {
			t.Fatal(err)
		}
	}
	var out [][]byte
	for _, r := range []ledger.Reply{
		&ledger.PreflightReply{Approved: true, Message: "approved", ReservationID: "0192b1f4-0000-7000-8000-000000000000",
			ReservedUnits: units, RemainingUnits: rem, ExpiresAt: &exp},
		&ledger.PreflightReply{Reason: ledger.ReasonBudgetExhausted, Message: "no <budget> & é", UpgradeURL: "https://x/y",
			RetryAfterMs: 250, Partial: true, Overdraft: true, Unchecked: true, MaxOutputTokens: 9},
		&ledger.RecordReply{Status: ledger.StatusRecorded, EventID: "e1", ReservationID: "r1", ChargedUnits: units,
			ReleasedUnits: neg, RemainingUnits: rem, Exhausted: true, Unpriced: "no price"},
		&ledger.RecordReply{Status: ledger.StatusDuplicate},
		&ledger.RecordReply{Status: ledger.StatusRecorded, ChargedUnits: units, RemainingUnits: rem,
			FundedBy: []events.GrantDraw{{GrantID: "g1", Units: units}, {GrantID: "g2", Units: neg}}},
	} {
		b, ok := ledger.AppendReply(nil, r)
		if !ok {
			t.Fatalf("AppendReply does not write %#v", r)
		}
		out = append(out, b)
	}
	return append(out,
		[]byte(`{"approved":true,"message":"a\"b","reserved_units":1,"remaining_units":1}`),
		[]byte(`{"approved":true,"message":"m","reserved_units":01,"remaining_units":1}`),
		[]byte(`{"approved":true,"message":"m","reserved_units":"1","remaining_units":1}`),
		[]byte(`{"status":"recorded","charged_units":1,"released_units":0,"overage_units":0,"remaining_units":-1,"exhausted":false,"extra":1}`),
		[]byte(` {"status":"recorded"}`),
		[]byte(`{"status":"recorded","charged_units":1,"released_units":0,"overage_units":0,"remaining_units":-1,"exhausted":false,"funded_by":[]}`),
		[]byte(`{"status":"recorded","charged_units":1,"released_units":0,"overage_units":0,"remaining_units":-1,"exhausted":false,"funded_by":[{"grant_id":"g","units":1},]}`),
		[]byte(`{"status":"recorded","charged_units":1,"released_units":0,"overage_units":0,"remaining_units":-1,"exhausted":false,"funded_by":[{"grant_id":"g","units":1,"x":2}]}`),
	)
}

// The writer's plain replies take the fast path, and it decodes them as
// encoding/json does.
func TestDecodeReplyFast(t *testing.T) {
	for i, b := range replySamples(t) {
		for _, pair := range [][2]any{{&ledger.PreflightReply{}, &ledger.PreflightReply{}}, {&ledger.RecordReply{}, &ledger.RecordReply{}}} {
			got, want := pair[0], pair[1]
			ok := decodeReplyFast(b, got)
			wantErr := json.Unmarshal(b, want)
			if i < 5 && ok != (i < 2 == (reflect.TypeOf(got) == reflect.TypeOf(&ledger.PreflightReply{}))) {
				t.Errorf("%s into %T: fast %v", b, got, ok)
			}
			if ok && (wantErr != nil || !reflect.DeepEqual(got, want)) {
				t.Errorf("%s: fast %+v, encoding/json %+v, %v", b, got, want, wantErr)
			}
		}
	}
}

// FuzzDecodeReplyFast: whatever the fast path accepts, encoding/json
// decodes to the same reply.
func FuzzDecodeReplyFast(f *testing.F) {
	for _, b := range replySamples(f) {
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, body []byte, preflight bool) {
		var got, want any = &ledger.RecordReply{}, &ledger.RecordReply{}
		if preflight {
			got, want = &ledger.PreflightReply{}, &ledger.PreflightReply{}
		}
		if !decodeReplyFast(body, got) {
			return
		}
		if err := json.Unmarshal(body, want); err != nil {
			t.Fatalf("%q: fast path accepted, encoding/json: %v", body, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", body, got, want)
		}
	})
}
