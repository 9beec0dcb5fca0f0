package strictjson

import (
	"strings"
	"testing"
	"time"
)

func TestProblem(t *testing.T) {
	type req struct {
		Name string    `json:"name"`
		At   time.Time `json:"at"`
	}
	long := `{"` + strings.Repeat("x", 2*ProblemBytesMax) + `":1}`
	for _, c := range []struct{ name, body, want string }{
		{"not an object", `[1,2]`, "want a JSON object (got array)"},
		{"wrong type", `{"name":7}`, `field "name" has the wrong type (number)`},
		{"trailing data", `{"name":"a"} {}`, "data after the JSON value"},
		{"unterminated", `{"name":"a`, "unterminated string"},
		{"duplicate", `{"name":"a","name":"b"}`, `duplicate key "name"`},
		{"unknown field", `{"nom":"a"}`, `unknown field "nom"`},
		{"long", long, "unknown field"},
		{"bad time", `{"at":"tomorrow"}`, `not in RFC 3339 form, like 2026-04-01T00:00:00Z (got "tomorrow")`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var v req
			err := Decode([]byte(c.body), &v)
			if err == nil {
				t.Fatalf("Decode(%s) accepted", c.body)
			}
			got := Problem(err)
			if !strings.Contains(got, c.want) {
				t.Errorf("Problem = %q, want it to say %q", got, c.want)
			}
			if strings.Contains(got, ErrMalformed.Error()) {
				t.Errorf("Problem = %q repeats %q", got, ErrMalformed)
			}
			if len(got) > ProblemBytesMax+len("...") {
				t.Errorf("Problem is %d bytes, want at most %d", len(got), ProblemBytesMax+len("..."))
			}
		})
	}
}
