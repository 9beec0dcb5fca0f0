package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LastCommit returns the ledger stream's last message.
func LastCommit(t testing.TB, js jetstream.JetStream) *jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ForgeTopUp appends what a forger who can publish on the log would: a
// commit topping cid up by a million units, fenced on the stream's end and
// linked into writer 0's chain exactly as the writer would link it,
// signed by sg (nil: unsigned). It returns the commit's sequence.
func ForgeTopUp(t testing.TB, js jetstream.JetStream, cid string, sg *events.Signer) uint64 {
	t.Helper()
	last := LastCommit(t, js)
	prev := events.ChainHash(last.Header.Get(events.ChainHeader), last.Data)
	ev, err := events.Encode(&events.Envelope{ID: "forged-ev", Type: events.TypeToppedUp, V: events.Version,
		At: time.Now().UTC(), CustomerID: cid, Data: &events.ToppedUp{Units: events.NewUnits(1_000_000, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	var enc events.CommitEncoder
	enc.Reset("forged-commit", events.WriterDefault, time.Now())
	enc.Add(ev)
	m := nats.NewMsg(events.LogSubject(events.WriterDefault))
	m.Data = enc.Bytes()
	m.Header.Set(events.ChainHeader, prev)
	m.Header.Set(jetstream.ExpectedLastSeqHeader, fmt.Sprint(last.Sequence))
	if sg != nil {
		m.Header.Set(events.SigHeader, sg.SignCommit(m.Subject, events.ChainHash(prev, m.Data)))
	}
	ack, err := js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}
