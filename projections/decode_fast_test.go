package projections_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// The bodies the Go client writes in the bench (ledger.MarshalRequest),
// and the same with the spacing Python's json.dumps uses.
var (
	clientPreflight = []byte(`{"agent_id":"research_agent","estimated_units":10,"idempotency_key":"0190f2c4-8e2a-7c3b-9d1e-2f4a5b6c7d8e"}`)
	clientRecord    = []byte(`{"agent_id":"research_agent","units":7,"reservation_id":"01JD7K3V9Q4W8X2Y5Z6A7B8C9D","idempotency_key":"0190f2c4-8e2a-7c3b-9d1e-2f4a5b6c7d8f"}`)
	sdkPreflight    = []byte(`{"agent_id": "research_agent", "customer_id": "user_123", "estimated_units": "12.5", "task_ref": "task-42", "ttl": "15m", "idempotency_key": "k1", "scope": {"team": "research", "user": "alice"}}`)
	sdkRecord       = []byte(`{"agent_id": "research_agent", "units": "7", "success": false, "task_ref": "task-42", "idempotency_key": "k2", "scope": {"team": "research"}}`)
)

// diffOps are the ops the differential tests send: the two the fast
// decoder reads and one it does not.
var diffOps = []events.Op{events.OpPreflight, events.OpRecord, events.OpRelease}

// sameDecode fails t unless DecodeRequest and the strict path alone agree
// on body: the same command, or errors with the same code and text. It
// reports whether the fast decoder took the body.
func sameDecode(t *testing.T, op events.Op, body []byte) bool {
	t.Helper()
	subj := events.RequestSubject(op, "user_123")
	got, gotErr := projections.DecodeRequest(subj, body)
	want, wantErr := projections.DecodeRequestStrict(subj, body)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%s %q: got error %v, want %v", op, body, gotErr, wantErr)
	}
	if wantErr != nil {
		if g, w := ledger.ErrorCode(gotErr), ledger.ErrorCode(wantErr); g != w || gotErr.Error() != wantErr.Error() {
			t.Fatalf("%s %q: got %s %q, want %s %q", op, body, g, gotErr, w, wantErr)
		}
	} else if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("%s %q:\n got %s\nwant %s", op, body, g, w)
	}
	_, fast := projections.DecodeRequestFastOnly(op, body)
	return fast
}

// TestDecodeFastTakesClientBodies: the bodies the bench sends take the
// fast path and decode as the strict path decodes them.
func TestDecodeFastTakesClientBodies(t *testing.T) {
	for _, c := range []struct {
		op   events.Op
		body []byte
	}{
		{events.OpPreflight, clientPreflight},
		{events.OpRecord, clientRecord},
		{events.OpPreflight, sdkPreflight},
		{events.OpRecord, sdkRecord},
		{events.OpPreflight, []byte(`{}`)},
		{events.OpRecord, []byte(` {"agent_id":"a","units":null,"success":false} `)},
	} {
		if !sameDecode(t, c.op, c.body) {
			t.Errorf("%s %s: not taken by the fast decoder", c.op, c.body)
		}
	}
	for _, req := range []ledger.Command{
		&ledger.PreflightRequest{AgentID: "research_agent", EstimatedUnits: ptrUnits("10"), IdempotencyKey: "k"},
		&ledger.PreflightRequest{AgentID: "a", Scope: map[string]string{"team": "r"}, TTL: "1h", MinUnits: ptrUnits("0.5")},
		&ledger.RecordRequest{AgentID: "research_agent", Units: ptrUnits("7"), ReservationID: "r1", IdempotencyKey: "k"},
	} {
		body, err := ledger.MarshalRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if !sameDecode(t, req.Op(), body) {
			t.Errorf("%s %s: not taken by the fast decoder", req.Op(), body)
		}
	}
}

func ptrUnits(s string) *events.Units {
	u, err := events.ParseUnits(s)
	if err != nil {
		panic(err)
	}
	return &u
}

// TestDecodeFastHandsOver: bodies the fast decoder must leave to the strict
// path, which refuses or reads them its own way.
func TestDecodeFastHandsOver(t *testing.T) {
	for _, body := range []string{
		`{"agent_id":"a","estimated_units":1,"estimated_units":1000}`,
		`{"agent_id":"a","ESTIMATED_UNITS":1}`,
		`{"agent_\u0069d":"a"}`,
		`{"agent_id":"a\u0062"}`,
		"{\"agent_id\":\"a\xff\"}",
		"{\"agent_id\":\"a\tb\"}",
		`{"agent_id":"a","metadata":{"k":1}}`,
		`{"agent_id":"a","admin":true}`,
		`{"agent_id":"a","estimated_units":01}`,
		`{"agent_id":"a","estimated_units":1.}`,
		`{"agent_id":"a","estimated_units":-0}`,
		`{"agent_id":"a","estimated_units":"NaN"}`,
		`{"agent_id":7}`,
		`{"agent_id":null}`,
		`{"agent_id":"a","scope":{}}`,
		`{"agent_id":"a","scope":{"t":"x","t":"y"}}`,
		`{"agent_id":"a","scope":{"a":"1","b":"2","c":"3","d":"4","e":"5"}}`,
		`{"agent_id":"a"} {}`,
		`{"agent_id":"a"}}`,
		"\ufeff{}",
		`[1]`,
	} {
		if sameDecode(t, events.OpPreflight, []byte(body)) {
			t.Errorf("%s: taken by the fast decoder", body)
		}
	}
}

// TestDecodeFastDifferential compares the two paths over many generated
// bodies, valid and not, and checks that the fast decoder took a good
// share of them (else the test proves little).
func TestDecodeFastDifferential(t *testing.T) {
	const bodies = 20000
	r := rand.New(rand.NewPCG(19, 3))
	taken := 0
	for range bodies {
		op := diffOps[r.IntN(len(diffOps))]
		if sameDecode(t, op, genBody(r, op)) {
			taken++
		}
	}
	if taken < bodies/10 {
		t.Errorf("fast decoder took %d of %d bodies, want at least a tenth", taken, bodies)
	}
	t.Logf("fast decoder took %d of %d bodies", taken, bodies)
}

// FuzzDecodeRequestFast: for any body, DecodeRequest (fast decoder, then
// the strict path) and the strict path alone give the same command or the
// same error.
func FuzzDecodeRequestFast(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 7))
	for i, body := range [][]byte{clientPreflight, clientRecord, sdkPreflight, sdkRecord, benchPreflight,
		[]byte(`{"agent_id":"a","estimated_units":1,"estimated_units":2}`), []byte(`{"units":1e-3,"success":true}`)} {
		f.Add(uint8(i), body)
	}
	for i := range 40 {
		f.Add(uint8(i), genBody(r, diffOps[i%len(diffOps)]))
	}
	f.Fuzz(func(t *testing.T, opIdx uint8, body []byte) {
		sameDecode(t, diffOps[int(opIdx)%len(diffOps)], body)
	})
}

// Pieces genBody builds bodies from: the keys of preflights and records
// and near misses, and values of every kind, good (first) and bad.
var (
	genKeys = map[events.Op][]string{
		events.OpPreflight: {"customer_id", "agent_id", "estimated_units", "task_ref", "task_ceiling", "ceiling",
			"ttl", "idempotency_key", "scope", "min_units"},
		events.OpRecord: {"customer_id", "agent_id", "units", "reservation_id", "success", "task_ref",
			"idempotency_key", "scope"},
		events.OpRelease: {"customer_id", "reservation_id", "idempotency_key"},
	}
	genKeysOdd = []string{"metadata", "usage", "usage_estimate", "Agent_ID", `agent_\u0069d`, "bogus", "",
		"agent_id ", "unit", "units", "estimated_units", "success", "reservation_id"}
	genStrings = []string{`"research_agent"`, `""`, `"user_123"`, `"USER_123"`, `"other"`, `"15m"`, `"1h"`,
		`"task-42"`, `"0190f2c4-8e2a-7c3b-9d1e-2f4a5b6c7d8e"`, `"é"`, `"a b"`, `"a.b"`, `"a*"`,
		"\"\u2028\"", "\"\U0001F600\"", "\"a\x7fb\"", `"` + strings.Repeat("x", 300) + `"`}
	genStringsOdd = []string{`"10000h"`, `"-5s"`, "\"a\xffb\"", `"a\nb"`, "\"a\tb\"", `"a\"b"`, `"\u00e9"`, `"\ud800"`}
	genAmounts    = []string{`10`, `0`, `7`, `12.5`, `1e3`, `1E+2`, `1e-2`, `0.000000000000000001`, `1e15`,
		`"12.5"`, `"10"`, `"1e3"`, `null`}
	genAmountsOdd = []string{`-0`, `-1`, `01`, `1.`, `.5`, `+1`, `1e`, `1e999999`, `0.0000000000000000001`, `1e16`,
		`1000000000000000.5`, `"NaN"`, `" 1"`, `"-1"`, `"0x10"`, `"1_000"`, `""`, `"1\u0030"`, `1 2`}
	genScopes = []string{`{"team":"r"}`, `{"team":"r","user":"a"}`, `{ "team" : "r" , "user" : "a" }`,
		`{"a":"b","c":"d","e":"f","g":"h"}`, `{"":""}`}
	genOthers = []string{`true`, `false`, `null`, `{}`, `[]`, `[1,2]`, `{"a":"1","a":"2"}`, `{"a":1}`, `{"a":null}`,
		`{"a":"b","c":"d","e":"f","g":"h","i":"j"}`, `{"t\u0065am":"r"}`, `{"team":"r\n"}`,
		`{"k":{"x":[1,{"y":null}]}}`, `{"model":"m","prompt_tokens":10}`, `tru`, `nul`, `"true"`, `{"team":"r",}`}
	genSpace    = []string{"", "", "", " ", "\n\t", "\r\n  "}
	genSpaceOdd = []string{"\v", "\u00a0", "\f"}
)

// genBody writes a body for op: mostly objects of op's keys with values of
// the right kind, with random mistakes, spacing and damage.
func genBody(r *rand.Rand, op events.Op) []byte {
	sp := func() string {
		if r.IntN(64) == 0 {
			return genSpaceOdd[r.IntN(len(genSpaceOdd))]
		}
		return genSpace[r.IntN(len(genSpace))]
	}
	keys := genKeys[op]
	order := r.Perm(len(keys)) // mostly no key twice
	var b strings.Builder
	b.WriteString(sp() + "{")
	n := r.IntN(len(keys) + 1)
	for i := range n {
		if i > 0 {
			b.WriteString(sp() + ",")
		}
		k := genPick(r, keys[order[i]:order[i]+1], genKeysOdd)
		b.WriteString(sp() + `"` + k + `"` + sp() + ":" + sp() + genValue(r, k) + sp())
	}
	b.WriteString("}" + sp())
	body := []byte(b.String())
	switch r.IntN(16) {
	case 0: // truncated
		body = body[:r.IntN(len(body)+1)]
	case 1: // trailing data
		body = append(body, []string{"{}", "x", "}", ",", "0"}[r.IntN(5)]...)
	case 2: // one byte changed
		if len(body) > 0 {
			body = bytes.Clone(body)
			body[r.IntN(len(body))] = `{}[]":,\ 0-e."`[r.IntN(14)]
		}
	case 3: // a member repeated
		if i := bytes.IndexByte(body, ','); i > 0 {
			if j := bytes.IndexByte(body, '{'); j >= 0 && j < i {
				body = append(append(bytes.Clone(body[:i+1]), body[j+1:i+1]...), body[i+1:]...)
			}
		}
	}
	return body
}

// genPick is mostly one of good, sometimes one of odd.
func genPick(r *rand.Rand, good, odd []string) string {
	if r.IntN(8) == 0 {
		return odd[r.IntN(len(odd))]
	}
	return good[r.IntN(len(good))]
}

// genValue is mostly a value of the kind key holds, sometimes any value.
func genValue(r *rand.Rand, key string) string {
	if r.IntN(12) == 0 {
		all := [][]string{genStrings, genStringsOdd, genAmounts, genAmountsOdd, genScopes, genOthers}
		s := all[r.IntN(len(all))]
		return s[r.IntN(len(s))]
	}
	switch key {
	case "estimated_units", "units", "task_ceiling", "ceiling", "min_units":
		return genPick(r, genAmounts, genAmountsOdd)
	case "success":
		return genPick(r, []string{"true", "false"}, []string{"null", `"true"`, "1", "True"})
	case "scope", "metadata", "usage", "usage_estimate":
		return genPick(r, genScopes, genOthers)
	}
	return genPick(r, genStrings, genStringsOdd)
}
