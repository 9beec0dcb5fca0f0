package events

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// The pieces random strings are made of: plain ASCII, and everything
// encoding/json escapes or replaces.
var jsonPieces = []string{"a", "Z", "0", "_", "-", ":", ".", "@", " ", "research", `"`, `\`, "<", ">", "&", "\n", "\t",
	"\x00", "\x1f", "\x7f", "é", "日本", "\u2028", "\u2029", "\xff", "\xc3", "😀"}

func randomJSONString(rng *rand.Rand) string {
	var b strings.Builder
	for range rng.IntN(6) {
		b.WriteString(jsonPieces[rng.IntN(len(jsonPieces))])
	}
	return b.String()
}

// encodings returns v as json.Marshal writes it and as an encoder with
// HTML escaping off writes it (events.Encode's setting).
func encodings(t *testing.T, v any) [2]string {
	t.Helper()
	a, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return [2]string{string(a), strings.TrimSuffix(buf.String(), "\n")}
}

// The scope fields' own MarshalJSON methods write what encoding/json wrote
// for them before they had any, with HTML escaping on and off.
func TestScopeJSONMatchesEncodingJSON(t *testing.T) {
	type refPlain struct {
		Dimension string `json:"dimension"`
		Value     string `json:"value"`
	}
	type drawPlain struct {
		GrantID string `json:"grant_id"`
		Units   Units  `json:"units"`
	}
	type withFields struct {
		Scope  ScopeMap    `json:"scope,omitempty"`
		Refs   []ScopeRef  `json:"refs,omitempty"`
		Ref    *ScopeRef   `json:"ref,omitempty"`
		Funded []GrantDraw `json:"funded,omitempty"`
	}
	type withPlain struct {
		Scope  map[string]string `json:"scope,omitempty"`
		Refs   []refPlain        `json:"refs,omitempty"`
		Ref    *refPlain         `json:"ref,omitempty"`
		Funded []drawPlain       `json:"funded,omitempty"`
	}
	rng := rand.New(rand.NewPCG(5, 6))
	amounts := []string{"0", "7", "0.5", "1000000", "123456789012345.123456789012345678"}
	for range 20_000 {
		var f withFields
		var p withPlain
		if n := rng.IntN(scopeMapSortMax + 3); n > 0 {
			f.Scope, p.Scope = ScopeMap{}, map[string]string{}
			for range n {
				k, v := randomJSONString(rng), randomJSONString(rng)
				f.Scope[k], p.Scope[k] = v, v
			}
		}
		for range rng.IntN(4) {
			d, v := randomJSONString(rng), randomJSONString(rng)
			f.Refs, p.Refs = append(f.Refs, ScopeRef{d, v}), append(p.Refs, refPlain{d, v})
		}
		if rng.IntN(2) == 0 {
			d, v := randomJSONString(rng), randomJSONString(rng)
			f.Ref, p.Ref = &ScopeRef{d, v}, &refPlain{d, v}
		}
		for range rng.IntN(3) {
			id, u := randomJSONString(rng), MustParseUnits(amounts[rng.IntN(len(amounts))])
			f.Funded, p.Funded = append(f.Funded, GrantDraw{id, u}), append(p.Funded, drawPlain{id, u})
		}
		if got, want := encodings(t, f), encodings(t, p); got != want {
			t.Fatalf("own methods %q\nencoding/json %q", got, want)
		}
	}
}
