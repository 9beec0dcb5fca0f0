package events_test

import (
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
)

func sampleReserved() *events.Envelope {
	u := events.NewUnits(10, 0)
	at := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	return &events.Envelope{
		ID: "0195a3c4-6f2e-7a10-8b3d-2f6c9e1d4a7b", Type: events.TypeReserved, V: events.Version, At: at, CustomerID: "user_123",
		Data: &events.Reserved{
			ReservationID: "0195a3c4-6f2e-7a10-8b3d-2f6c9e1d4a7b", AgentID: "research_agent", Units: u, ExpiresAt: at.Add(15 * time.Minute),
			Request: events.Request{IdempotencyKey: "0195a3c4-6f2e-7a10-8b3d-2f6c9e1d4a7c", RequestHash: "9742f958cfaa38352321fdb6b65f3a89"},
			Balance: events.Balance{PeriodStart: at, Limit: events.NewUnits(1000, 0), Used: events.NewUnits(120, 0), Reserved: u, Remaining: events.NewUnits(870, 0)},
		},
	}
}

// BenchmarkEncode is the writer's per-event encoding cost.
func BenchmarkEncode(b *testing.B) {
	e := sampleReserved()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.Encode(e); err != nil {
			b.Fatal(err)
		}
	}
}

var sinkUnits events.Units

// BenchmarkUnitsAddSub is one addition and one subtraction of the kind
// every decision and every Apply makes: a balance and a request's amount.
func BenchmarkUnitsAddSub(b *testing.B) {
	balance, amount := events.NewUnits(1205, -1), events.NewUnits(325, -2) // 120.5 and 3.25
	b.ReportAllocs()
	for b.Loop() {
		sinkUnits = balance.Add(amount).Sub(amount)
	}
	if sinkUnits.Cmp(balance) != 0 {
		b.Fatalf("120.5 + 3.25 - 3.25 = %s", sinkUnits)
	}
}

// BenchmarkDecodeCommit is replay's per-event decoding cost, on commits of
// 100 events.
func BenchmarkDecodeCommit(b *testing.B) { benchmarkDecodeCommit(b, events.DecodeCommit) }

// BenchmarkDecodeCommitEncodingJSON is the same with encoding/json alone:
// the cost before the fast decoder, and of any commit it hands over.
func BenchmarkDecodeCommitEncodingJSON(b *testing.B) {
	benchmarkDecodeCommit(b, events.DecodeCommitEncodingJSON)
}

func benchmarkDecodeCommit(b *testing.B, decode func([]byte) (*events.Commit, error)) {
	var enc events.CommitEncoder
	enc.Reset("c", "0", time.Now())
	ev, _ := events.Encode(sampleReserved())
	for range 100 {
		enc.Add(ev)
	}
	body := append([]byte(nil), enc.Bytes()...)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decode(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
