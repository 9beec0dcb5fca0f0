package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go/jetstream"
)

// VerifyChain walks every commit of the stream, as it is when the walk
// starts, recomputing each writer's hash chain from the stored bytes, and
// reports the first commit whose Agentbill-Chain-Prev does not match its
// writer's previous commit and, if keys is not nil, the first commit whose
// signature (events.SigHeader) is missing or not made by one of keys. It
// also lists the reset commits (an operator's accepted break). It streams:
// memory holds one hash per writer.
func VerifyChain(ctx context.Context, js jetstream.JetStream, keys events.Keyring, progress func(seq, last uint64)) (*ChainReport, error) {
	rep := &ChainReport{Writers: map[string]int{}, Heads: map[string]string{}, Keys: keys.IDs()}
	unsigned := map[string]uint64{} // per writer, the first unsigned commit no signature covers yet
	signed := map[string]bool{}     // per writer, a signed commit was seen: its unsigned prefix is over
	last, err := projections.LastSequence(ctx, js)
	if err != nil || last == 0 {
		return rep, err
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{events.LogSubjects},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: events.ConsumerInactiveMax,
	})
	if err != nil {
		return nil, fmt.Errorf("chain walk: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(projections.ReplayFetchBytesMax))
	if err != nil {
		return nil, fmt.Errorf("chain walk: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for rep.Commits < last {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			return rep, fmt.Errorf("chain walk after %d commits: %w", rep.Commits, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return rep, err
		}
		seq := md.Sequence.Stream
		if seq > last {
			break
		}
		rep.Commits++
		writer := strings.TrimPrefix(msg.Subject(), events.LogSubjectPrefix)
		got := msg.Headers().Get(events.ChainHeader)
		want := rep.Heads[writer]
		if got != want && rep.Broken == nil {
			rep.Broken = &Link{Seq: seq, Writer: writer, Got: got, Want: want}
		}
		// Chain on from this commit as stored, so one bad commit is
		// reported once, not as every later link.
		hash := events.ChainHash(got, msg.Data())
		rep.Heads[writer] = hash
		if keys != nil {
			err := keys.VerifyCommit(msg.Subject(), hash, msg.Headers().Get(events.SigHeader))
			switch {
			case errors.Is(err, events.ErrUnsigned) && signed[writer]:
				if rep.BadSignature == nil {
					rep.BadSignature = &Fault{Seq: seq, Writer: writer, Problem: "no signature, after signed commits of its writer"}
				}
			case errors.Is(err, events.ErrUnsigned):
				// Written before commits were signed: fine once a later
				// signed commit of its writer covers it.
				if _, ok := unsigned[writer]; !ok {
					unsigned[writer] = seq
				}
				rep.Unsigned++
			case err != nil:
				if rep.BadSignature == nil {
					rep.BadSignature = &Fault{Seq: seq, Writer: writer, Problem: err.Error()}
				}
			default:
				delete(unsigned, writer)
				signed[writer] = true
			}
		}
		if r := msg.Headers().Get(projections.ResetHeader); r != "" {
			rep.Resets = append(rep.Resets, Reset{Seq: seq, Writer: writer, Record: r})
		}
		rep.Writers[writer]++
		if progress != nil && (seq%projections.ReplayProgressEvery == 0 || seq == last) {
			progress(seq, last)
		}
	}
	for writer, seq := range unsigned {
		if rep.BadSignature == nil || seq < rep.BadSignature.Seq {
			rep.BadSignature = &Fault{Seq: seq, Writer: writer, Problem: "no signature, and no later commit of its writer is signed"}
		}
	}
	return rep, nil
}
