package client

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

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
