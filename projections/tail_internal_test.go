package projections

import (
	"context"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/nats-io/nats.go/jetstream"
)

// tailLostFor is how long the test keeps JetStream away from a tail: the
// client notices the missing heartbeats after 10 s and then spends up to
// 10 s on its first attempt to recreate its consumer, which is when
// stopping it used to wait for that attempt (7 s in this test).
const tailLostFor = 14 * time.Second

// A tail whose JetStream is gone stops within tailStopWaitMax: a standby
// or a follower shutting down while the cluster has lost its quorum must
// not wait for the client's next attempt to recreate its consumer.
func TestTailStopsWhileJetStreamIsGone(t *testing.T) {
	if testing.Short() {
		t.Skip("keeps JetStream away for 14 s")
	}
	srv, js := startLog(t)
	stop := tailOne(t, js)
	if err := srv.Server.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(tailLostFor)
	start := time.Now()
	stop()
	if took := time.Since(start); took > tailStopWaitMax+time.Second {
		t.Fatalf("stop took %s with JetStream gone; at most %s expected", took, tailStopWaitMax)
	} else {
		t.Logf("stop took %s with JetStream gone", took)
	}
}

// A tail's consumer, like every reader's, goes once idle for
// events.ConsumerInactiveMax (consumers_test.go), not nats.go's five
// minutes: a standby that takes over leaves it behind.
func TestTailConsumerGoesWhenIdle(t *testing.T) {
	_, js := startLog(t)
	defer tailOne(t, js)()
	if n := orderedConsumers(t, js, events.StreamName); n != 1 {
		t.Fatalf("the log has %d ordered consumers, want the tail's", n)
	}
}

// tailOne appends a commit to the log and tails it until the tail has
// delivered it; it returns the tail's stop.
func tailOne(t *testing.T, js jetstream.JetStream) (stop func()) {
	t.Helper()
	ctx := context.Background()
	if _, err := js.Publish(ctx, events.LogSubject("tail-test"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	msgs, stop, err := tail(ctx, js, events.LogSubjects, 1)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-msgs:
	case <-time.After(10 * time.Second):
		stop()
		t.Fatal("the tail delivered nothing")
	}
	return stop
}

// orderedConsumers returns how many ordered consumers (ephemeral, with no
// acks) stream has, failing t if one's inactive threshold is not
// events.ConsumerInactiveMax.
func orderedConsumers(t *testing.T, js jetstream.JetStream, stream string) int {
	t.Helper()
	str, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	infos := str.ListConsumers(context.Background())
	for info := range infos.Info() {
		if info.Config.Durable != "" || info.Config.AckPolicy != jetstream.AckNonePolicy {
			continue
		}
		n++
		if got := info.Config.InactiveThreshold; got != events.ConsumerInactiveMax {
			t.Errorf("consumer %s of %s: inactive threshold %s, want %s", info.Name, stream, got, events.ConsumerInactiveMax)
		}
	}
	if err := infos.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
