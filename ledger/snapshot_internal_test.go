package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
)

// Every event type that can answer a request round-trips through the
// snapshot's event codec with every field set, so a field added to an
// event without being added to the codec fails here.
func TestSnapshotEventCodecCoversEveryField(t *testing.T) {
	for _, d := range []events.Data{&events.BudgetSet{}, &events.ToppedUp{}, &events.Reserved{}, &events.Denied{},
		&events.Recorded{}, &events.Released{}, &events.Extended{}} {
		t.Run(string(d.EventType()), func(t *testing.T) {
			fillEveryField(t, reflect.ValueOf(d).Elem(), 1)
			if _, op := requestOf(d); op == "" {
				t.Fatalf("requestOf(%T) names no op", d)
			}
			req, _ := requestOf(d)
			eventID := "event-1"
			if r, ok := d.(*events.Reserved); ok {
				eventID = r.ReservationID
			}
			for _, flags := range []byte{0, idemSameKey, idemSameKey | idemResIsEvent} {
				if _, ok := d.(*events.Reserved); !ok && flags&idemResIsEvent != 0 {
					continue
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
