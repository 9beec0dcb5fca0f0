package ledger_test

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// replyJSON is the writer's encodeReply: encoding/json, HTML not escaped.
func replyJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encode %#v: %v", v, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

type replyGen struct{ r *rand.Rand }

var replyFragments = []string{"", "approved", "0195a3c4-6f2e-7a10", "<b>&", "é日本", `q"uote`, `back\slash`, "nl\n",
	"ls\u2028", "bad\xff", "\x7f", "10 units held; 90 remaining"}

func (g replyGen) str() string {
	if g.r.Intn(3) > 0 {
		return replyFragments[g.r.Intn(4)] // mostly strings the fast path writes
	}
	return replyFragments[g.r.Intn(len(replyFragments))] + replyFragments[g.r.Intn(len(replyFragments))]
}

func (g replyGen) units() events.Units {
	var u events.Units
	s := []string{"0", "7", "10", "1000000", "0.000000000000000001", "123456789012345678901234567890", "3.25"}[g.r.Intn(7)]
	if err := json.Unmarshal([]byte(s), &u); err != nil {
		panic(err)
	}
	return u
}

func (g replyGen) signed() events.Signed {
	var s events.Signed
	v := []string{"0", "-7", "10", "-0.5", "99999.125"}[g.r.Intn(5)]
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		panic(err)
	}
	return s
}

func (g replyGen) time() *time.Time {
	var t time.Time
	switch g.r.Intn(5) {
	case 0:
		return nil
	case 1:
		t = time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	case 2:
		t = time.Unix(g.r.Int63n(4e9), g.r.Int63n(1e9)).UTC()
	case 3:
		t = time.Unix(g.r.Int63n(4e9), 0).In(time.FixedZone("", 3600))
	default:
		t = time.Unix(g.r.Int63n(4e9), 500_000_000).UTC()
	}
	return &t
}

func (g replyGen) reply() ledger.Reply {
	if g.r.Intn(2) == 0 {
		r := &ledger.PreflightReply{Approved: g.r.Intn(2) == 0, Reason: g.str(), Message: g.str(), ReservationID: g.str(),
			ReservedUnits: g.units(), RemainingUnits: g.signed(), ExpiresAt: g.time(), UpgradeURL: g.str(),
			Partial: g.r.Intn(4) == 0, Overdraft: g.r.Intn(4) == 0, Unchecked: g.r.Intn(4) == 0}
		if g.r.Intn(4) == 0 {
			r.RetryAfterMs, r.MaxOutputTokens = g.r.Int63n(5000), g.r.Int63n(5000)
		}
		if g.r.Intn(8) == 0 {
			r.Scope = &events.ScopeRef{Dimension: "team", Value: g.str()}
		}
		return r
	}
	r := &ledger.RecordReply{Status: g.str(), EventID: g.str(), ReservationID: g.str(), ChargedUnits: g.units(),
		ReleasedUnits: g.units(), OverageUnits: g.units(), RemainingUnits: g.signed(), Exhausted: g.r.Intn(2) == 0,
		Unpriced: g.str()}
	switch g.r.Intn(8) {
	case 0:
		r.FundedBy = []events.GrantDraw{{GrantID: g.str(), Units: g.units()}}
	case 1:
		r.FundedBy = []events.GrantDraw{{GrantID: g.str(), Units: g.units()}, {GrantID: g.str(), Units: g.units()}}
	}
	return r
}

// TestAppendReplyEquivalence: whatever AppendReply writes is what
// encoding/json writes, and it writes most plain replies.
func TestAppendReplyEquivalence(t *testing.T) {
	g := replyGen{r: rand.New(rand.NewSource(4))}
	fast, funded := 0, 0
	const repliesN = 20000
	for range repliesN {
		r := g.reply()
		got, ok := ledger.AppendReply(nil, r)
		if !ok {
			continue
		}
		fast++
		if bytes.Contains(got, []byte(`"funded_by":`)) {
			funded++
		}
		if want := replyJSON(t, r); !bytes.Equal(got, want) {
			t.Fatalf("AppendReply differs:\n got %s\nwant %s", got, want)
		}
	}
	if fast < repliesN/4 {
		t.Errorf("AppendReply wrote %d of %d replies: the generator does not reach it", fast, repliesN)
	}
	if funded < repliesN/40 {
		t.Errorf("AppendReply wrote %d replies with grant draws: the generator does not reach it", funded)
	}
	if _, ok := ledger.AppendReply(nil, &ledger.StatusReply{}); ok {
		t.Errorf("AppendReply wrote a status reply it does not know")
	}
}

// TestAppendReplyKnowsEveryField fails when a field is added to a reply
// AppendReply writes: add it there (or to its fall-back conditions), then
// update the count here.
func TestAppendReplyKnowsEveryField(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
	}{{ledger.PreflightReply{}, 15}, {ledger.RecordReply{}, 11}} {
		if got := reflect.TypeOf(c.v).NumField(); got != c.want {
			t.Errorf("%T has %d fields; AppendReply knows %d", c.v, got, c.want)
		}
	}
}
