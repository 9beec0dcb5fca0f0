package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
)

// forge appends a well-formed commit with a privileged connection, behind
// the writer's back, the way an attacker with stream write access would.
func forge(t *testing.T, s *testenv.Server, writer, chainPrev string, setChain bool) uint64 {
	t.Helper()
	js := testenv.JetStream(t, testenv.Connect(t, s))
	body, err := events.Encode(&events.Envelope{ID: "forged-event", Type: events.TypeToppedUp, V: events.Version,
		At: time.Now().UTC(), CustomerID: "user_123", Data: &events.ToppedUp{Units: events.NewUnits(1000, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	var enc events.CommitEncoder
	enc.Reset("forged-commit", writer, time.Now())
	enc.Add(body)
	m := nats.NewMsg(events.LogSubject(writer))
	m.Data = enc.Bytes()
	if setChain {
		m.Header.Set(events.ChainHeader, chainPrev)
	}
	ack, err := js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func TestVerifyChainCatchesAForgedCommit(t *testing.T) {
	cases := []struct {
		name     string
		writer   string
		prev     string
		setChain bool
		broken   bool // a broken link (else: an unknown writer)
	}{
		{"no chain header", events.WriterDefault, "", false, true},
		{"a made-up chain hash", events.WriterDefault, "0000", true, true},
		{"a new writer name", "evil", "", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testenv.StartServer(t, "")
			testenv.StartWriter(t, s, nil, nil)
			c := testenv.Client(t, s)
			scripted(t, c, testenv.NewClock(t0))
			js := testenv.JetStream(t, c.Conn())
			rep, err := audit.VerifyChain(context.Background(), js, nil, nil)
			if err != nil || rep.Broken != nil || rep.Commits == 0 {
				t.Fatalf("before forging: %+v %v, want an intact chain", rep, err)
			}
			seq := forge(t, s, tc.writer, tc.prev, tc.setChain)
			// The writer goes on appending after the forgery.
			if _, err := c.TopUp(context.Background(), "user_123", ledger.TopUpRequest{Units: testenv.Ptr(t, "1")}); err != nil {
				t.Fatal(err)
			}
			rep, err = audit.VerifyChain(context.Background(), js, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			rep.CheckWriters([]string{events.WriterDefault})
			if tc.broken {
				if rep.Broken == nil || rep.Broken.Seq != seq {
					t.Fatalf("broken link %+v, want one at the forged sequence %d", rep.Broken, seq)
				}
			} else if rep.Broken != nil || len(rep.Unknown) != 1 || rep.Unknown[0] != tc.writer {
				t.Fatalf("report %+v, want the unknown writer %q flagged", rep, tc.writer)
			}
		})
	}
}

func TestVerifyStateMatchesLiveUnderTraffic(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, &ledger.DefaultBudget{Limit: events.NewUnits(100, 0), Period: ledger.PeriodMonth})
	c := testenv.Client(t, s)
	ctx := context.Background()
	for i := range 20 {
		if _, err := c.Preflight(ctx, "c"+strconv.Itoa(i), ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "3")}); err != nil {
			t.Fatal(err)
		}
	}
	// Keep customers busy while the check runs: no false mismatch.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bc := testenv.Client(t, s)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := bc.Record(ctx, "c"+strconv.Itoa(i%20), ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "0.01")}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	rep, err := audit.VerifyState(ctx, testenv.JetStream(t, c.Conn()), c, nil, nil)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Mismatches) > 0 || rep.Customers != 20 || rep.Compared+len(rep.Unsettled) != 20 || rep.Compared == 0 {
		t.Fatalf("report %+v, want 20 customers, some compared, and no mismatch", rep)
	}
}

// A commit the live writer has not applied (appended behind its back, with
// no traffic since) means the log and the live state disagree: verify must
// not pass.
func TestVerifyStateFlagsALogTheWriterHasNotSeen(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil)
	c := testenv.Client(t, s)
	scripted(t, c, testenv.NewClock(t0))
	forge(t, s, events.WriterDefault, "", false)
	rep, err := audit.VerifyState(context.Background(), testenv.JetStream(t, c.Conn()), c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Mismatches)+len(rep.Unsettled) == 0 {
		t.Fatalf("report %+v: the forged top-up went unnoticed", rep)
	}
}

// With the service's public keys, a forged commit whose chain link is
// right is still caught, by its missing signature; unsigned commits that a
// later signed one covers (a log adopted when signatures began) are not.
func TestVerifyChainChecksSignatures(t *testing.T) {
	s := testenv.StartServer(t, "")
	old := testenv.StartWriter(t, s, nil, nil) // unsigned, as before signatures
	c := testenv.Client(t, s)
	ctx := context.Background()
	if _, err := c.SetBudget(ctx, "user_123", ledger.BudgetRequest{Limit: testenv.Ptr(t, "100"), Period: "month"}); err != nil {
		t.Fatal(err)
	}
	old.Stop(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sg := events.NewSigner(key)
	keys := events.NewKeyring(sg.Public())
	w := testenv.StartWriter(t, s, nil, nil, func(c *projections.Config) {
		c.Signer, c.Keys, c.AdoptUnsigned = sg, keys, "signatures begin"
	})
	if _, err := c.Preflight(ctx, "user_123", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "1")}); err != nil {
		t.Fatal(err)
	}
	w.Stop(t)
	js := testenv.JetStream(t, testenv.Connect(t, s))
	rep, err := audit.VerifyChain(ctx, js, keys, nil)
	if err != nil || rep.BadSignature != nil || rep.Broken != nil || rep.Unsigned != 1 {
		t.Fatalf("adopted log: %+v, %v; want intact with 1 covered unsigned commit", rep, err)
	}
	seq := forge(t, s, events.WriterDefault, rep.Heads[events.WriterDefault], true)
	rep, err = audit.VerifyChain(ctx, js, keys, nil)
	if err != nil || rep.Broken != nil || rep.BadSignature == nil || rep.BadSignature.Seq != seq {
		t.Fatalf("after a forged commit with a correct link: %+v, %v; want its sequence %d as not signed", rep, err, seq)
	}
	if rep, err = audit.VerifyChain(ctx, js, nil, nil); err != nil || rep.BadSignature != nil || rep.Broken != nil {
		t.Errorf("without keys the chain alone is checked, and it is intact: %+v, %v", rep, err)
	}
}
