package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/prices"
)

// canonicalStrings are the pieces random strings are made of: what IDs
// are made of, and everything json.Marshal escapes or replaces (quotes,
// backslashes, HTML characters, control characters, U+2028, invalid
// UTF-8) and multi-byte text.
var canonicalStrings = []string{"a", "Z", "0", "_", "-", ":", ".", "@", " ", "research", "01900000-0000-7000-8000-000000000001",
	`"`, `\`, "<", ">", "&", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "日本", "\u2028", "\u2029", "\xff", "\xc3", "😀"}

func randomString(rng *rand.Rand) string {
	var b strings.Builder
	for range rng.IntN(6) {
		b.WriteString(canonicalStrings[rng.IntN(len(canonicalStrings))])
	}
	return b.String()
}

var canonicalAmounts = []string{"0", "1", "10", "0.5", "1e3", "123456789012345.123456789012345678", "0.000000000000000001", "1000000000000000"}

// fillRandom sets every field of the struct v points to at random (each
// optional one left empty half the time), by reflection: a field added to
// a request later is covered without this test changing.
func fillRandom(t *testing.T, rng *rand.Rand, v any) {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f, sf := rv.Field(i), rv.Type().Field(i)
		if rng.IntN(2) == 0 && sf.Name != "AgentID" {
			continue // the zero value
		}
		switch f.Interface().(type) {
		case string:
			f.SetString(randomString(rng))
		case *events.Units:
			u := events.MustParseUnits(canonicalAmounts[rng.IntN(len(canonicalAmounts))])
			f.Set(reflect.ValueOf(&u))
		case *bool:
			b := rng.IntN(2) == 0
			f.Set(reflect.ValueOf(&b))
		case map[string]string:
			m := map[string]string{}
			for range rng.IntN(ScopeDimensionsMax + 2) {
				m[randomString(rng)] = randomString(rng)
			}
			f.Set(reflect.ValueOf(m))
		case json.RawMessage:
			f.Set(reflect.ValueOf(json.RawMessage(`{"k": "<v>" , "n": [1, 2]}`)))
		case *prices.Estimate, *events.Usage:
			// Priced requests go to json.Marshal (appendCanonical hands
			// them over); fill them rarely, so most requests still
			// exercise appendCanonical.
			if rng.IntN(8) == 0 {
				in, out := int64(rng.IntN(1000)), int64(rng.IntN(1000))
				if _, ok := f.Interface().(*events.Usage); ok {
					f.Set(reflect.ValueOf(&events.Usage{Model: randomString(rng), InputTokens: &in, OutputTokens: &out}))
				} else {
					f.Set(reflect.ValueOf(&prices.Estimate{Model: randomString(rng), InputTokens: &in, MaxOutputTokens: &out}))
				}
			}
		default:
			t.Fatalf("%s.%s: a field of type %s this test cannot fill; teach it (and appendCanonical) the type",
				rv.Type().Name(), sf.Name, f.Type())
		}
	}
}

// appendCanonical must write exactly what json.Marshal writes, or a retry
// would not match the hash its first attempt stored in the log.
func TestCanonicalMatchesMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	written := 0
	for i := range 20_000 {
		var c Command
		if i%2 == 0 {
			c = &PreflightRequest{}
		} else {
			c = &RecordRequest{}
		}
		fillRandom(t, rng, c)
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendCanonical(nil, c)
		if !ok {
			continue
		}
		written++
		if string(got) != string(want) {
			t.Fatalf("%T:\nappendCanonical %s\njson.Marshal    %s", c, got, want)
		}
	}
	// Half the requests carry metadata (json.Marshal's), and some too many
	// scope dimensions: the rest must have been written here.
	if written < 5000 {
		t.Fatalf("only %d of 20,000 requests written by appendCanonical", written)
	}
	t.Logf("%d requests written, each equal to json.Marshal's", written)
}

// A known request's hash is pinned: it is in logs written before the fast
// path existed, and must stay what it was.
func TestRequestHashPinned(t *testing.T) {
	est, min := events.MustParseUnits("10"), events.MustParseUnits("2.5")
	r := &PreflightRequest{CustomerID: "acme", AgentID: "research_agent", EstimatedUnits: &est, TaskRef: "t<1>",
		IdempotencyKey: "k-1", Scope: map[string]string{"user": "alice", "team": "research"}, MinUnits: &min}
	b, _ := json.Marshal(r)
	s := NewState()
	if got, want := s.requestHash(r), hashOf(t, "preflight\n"+string(b)); got != want {
		t.Fatalf("requestHash %s, the hash of json.Marshal's bytes %s", got, want)
	}
	if got, want := s.requestHash(r), "bc6e62f825b6378a92bcab5e726ecca6"; got != want {
		t.Fatalf("requestHash %s, want %s (the hash logs written so far hold)", got, want)
	}
}

func hashOf(t *testing.T, s string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// validDimension is the documented pattern, without a regexp.
func TestValidDimensionIsThePattern(t *testing.T) {
	pattern := regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "az09_AZ-.é\x00 "
	cases := []string{"", "a", "team", "_team", "9lives", "a_1", strings.Repeat("a", 32), strings.Repeat("a", 33), "Team", "tëam"}
	for range 20_000 {
		b := make([]byte, rng.IntN(36))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		if got, want := validDimension(c), pattern.MatchString(c); got != want {
			t.Fatalf("validDimension(%q) = %v, the pattern says %v", c, got, want)
		}
	}
}
