package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// logFlags are the flags of the subcommands that read the log.
type logFlags struct {
	fs      *flag.FlagSet
	nats    *natsFlags
	jsonOut bool
}

func newLogFlags(name string, stderr io.Writer) *logFlags {
	f := &logFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.nats = addNATSFlags(f.fs, true)
	f.fs.BoolVar(&f.jsonOut, "json", false, "print JSON")
	return f
}

// connect opens the session and the JetStream context on it.
func (f *logFlags) connect(ctx context.Context) (*session, jetstream.JetStream, error) {
	s, err := f.nats.connect(ctx, nats.Name("agentbill-"+f.fs.Name()))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, js, nil
}

// progressFunc reports progress on stderr when it is a terminal (and the
// output is not JSON); nil otherwise.
func progressFunc(stderr io.Writer, what string, quiet bool) func(seq, last uint64) {
	if quiet || !isTerminal(stderr) {
		return nil
	}
	return func(seq, last uint64) {
		fmt.Fprintf(stderr, "\r%s: commit %d of %d (%d%%)", what, seq, last, seq*100/max(last, 1))
		if seq == last {
			fmt.Fprintln(stderr)
		}
	}
}

// parseTime reads RFC 3339 or a plain date (midnight UTC).
func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, ledger.Errorf(ledger.CodeInvalidArgument, "--%s %q: use RFC 3339 (2026-03-01T09:00:00Z) or a date (2026-03-01)", name, s)
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "verify" {
		return runAuditVerify(ctx, args[1:], stdout, stderr)
	}
	f := newLogFlags("audit", stderr)
	customer := f.fs.String("customer", "", "customer ID")
	from := f.fs.String("from", "", "start time (RFC 3339 or date)")
	to := f.fs.String("to", "", "end time (RFC 3339 or date)")
	format := f.fs.String("format", audit.FormatTable, "table, json (one object per line) or csv")
	if err := f.fs.Parse(args); err != nil {
		return errUsage
	}
	if *customer == "" {
		fmt.Fprintln(stderr, "agentbill audit: --customer is required")
		return errUsage
	}
	if f.jsonOut {
		*format = audit.FormatJSON
	}
	fromT, err := parseTime("from", *from)
	if err != nil {
		return err
	}
	toT, err := parseTime("to", *to)
	if err != nil {
		return err
	}
	rw, err := audit.NewRowWriter(stdout, *format)
	if err != nil {
		return ledger.Errorf(ledger.CodeInvalidArgument, "%v", err)
	}
	s, js, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	filter := audit.Filter{CustomerID: *customer, From: fromT, To: toT,
		Progress: progressFunc(stderr, "reading the log", *format != audit.FormatTable)}
	if err := audit.History(s.ctx, js, filter, rw.Write); err != nil {
		return s.explain(err)
	}
	return rw.Flush()
}

func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newLogFlags("audit verify", stderr)
	writers := f.fs.String("writers", events.WriterDefault, "comma-separated writers expected in the log (partitioned ledgers list theirs)")
	pk := addPubKeyFlags(f.fs, "that every commit must be signed by")
	if err := f.fs.Parse(args); err != nil {
		return errUsage
	}
	keys, err := pk.keyring(f.nats.dataDir)
	if err != nil {
		return err
	}
	s, js, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	rep, err := audit.VerifyChain(s.ctx, js, keys, progressFunc(stderr, "verifying", f.jsonOut))
	if err != nil {
		return s.explain(err)
	}
	rep.CheckWriters(strings.Split(*writers, ","))
	if f.jsonOut {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else if rep.Broken == nil && rep.BadSignature == nil && len(rep.Unknown) == 0 {
		signed := "signatures not checked"
		if keys != nil {
			signed = fmt.Sprintf("every commit signed by the service (keys %s)", strings.Join(rep.Keys, ", "))
			if rep.Unsigned > 0 {
				signed += fmt.Sprintf(", %d from before signatures covered by a later signed commit", rep.Unsigned)
			}
		}
		fmt.Fprintf(stdout, "chain intact: %d commits from %d writer(s); %s\n", rep.Commits, len(rep.Writers), signed)
		for _, r := range rep.Resets {
			fmt.Fprintf(stdout, "reset accepted by an operator at sequence %d (writer %s): %s\n", r.Seq, r.Writer, r.Record)
		}
	}
	if rep.Broken != nil {
		return fmt.Errorf("tampering detected: %s", rep.Broken)
	}
	if rep.BadSignature != nil {
		return fmt.Errorf("tampering detected: %s", rep.BadSignature)
	}
	if len(rep.Unknown) > 0 {
		return fmt.Errorf("tampering detected: commits from unexpected writer(s) %s (expected %s)", strings.Join(rep.Unknown, ", "), *writers)
	}
	return nil
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newLogFlags("replay", stderr)
	untilSeq := f.fs.Uint64("until-seq", 0, "replay up to this sequence")
	untilTime := f.fs.String("until-time", "", "replay the events decided up to this time (RFC 3339 or date)")
	customer := f.fs.String("customer", "", "print only this customer")
	verify := f.fs.Bool("verify", false, "compare every customer with the live service; exit 1 on any difference")
	if err := f.fs.Parse(args); err != nil {
		return errUsage
	}
	if *untilSeq != 0 && *untilTime != "" {
		fmt.Fprintln(stderr, "agentbill replay: give --until-seq or --until-time, not both")
		return errUsage
	}
	if *verify && (*untilSeq != 0 || *untilTime != "") {
		fmt.Fprintln(stderr, "agentbill replay: --verify compares the whole log with the live service; it takes no --until")
		return errUsage
	}
	until, err := parseTime("until-time", *untilTime)
	if err != nil {
		return err
	}
	s, js, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	progress := progressFunc(stderr, "replaying", f.jsonOut)
	if *verify {
		return s.explain(replayVerify(s.ctx, js, client.New(s.nc), stdout, progress, f.jsonOut))
	}
	st, seq, err := projections.Rebuild(s.ctx, js, projections.ReplayStop{UntilSeq: *untilSeq, UntilTime: until, Progress: progress}, nil)
	if err != nil {
		return s.explain(err)
	}
	at := time.Now().UTC()
	if !until.IsZero() {
		at = until
	}
	var ids []string
	if *customer != "" {
		ids = []string{*customer}
	} else {
		st.CustomerIDs(func(id string) { ids = append(ids, id) })
		sort.Strings(ids)
	}
	return printBalances(stdout, st, ids, seq, at, f.jsonOut)
}

func printBalances(out io.Writer, st *ledger.State, ids []string, seq uint64, at time.Time, jsonOut bool) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	defer w.Flush()
	if !jsonOut {
		fmt.Fprintf(w, "replayed to sequence %d (%d events), balances as of %s\n\n", seq, st.EventsApplied(), at.Format(time.RFC3339))
		fmt.Fprintln(w, "CUSTOMER\tPERIOD\tLIMIT\tUSED\tRESERVED\tREMAINING\tOPEN")
	}
	for _, id := range ids {
		s, err := st.Status(id, at)
		if err != nil {
			return err
		}
		s.AsOfSeq = seq
		if jsonOut {
			if err := printJSON(w, s); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", id, s.Period, s.Limit.Add(s.TopUps), s.Used, s.Reserved, s.Remaining, s.OpenReservations)
	}
	return nil
}

func replayVerify(ctx context.Context, js jetstream.JetStream, live *client.Client, stdout io.Writer, progress func(seq, last uint64), jsonOut bool) error {
	rep, err := audit.VerifyState(ctx, js, live, nil, progress)
	if err != nil {
		return err
	}
	if jsonOut {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "replayed to sequence %d: %d customers, %d compared, %d differ, %d kept changing\n",
			rep.Seq, rep.Customers, rep.Compared, len(rep.Mismatches), len(rep.Unsettled))
		for _, m := range rep.Mismatches {
			fmt.Fprintf(stdout, "\ncustomer %s differs:\n  replayed %s\n  live     %s\n", m.CustomerID, m.Replayed, m.Live)
		}
		if len(rep.Unsettled) > 0 {
			fmt.Fprintf(stdout, "\nnot compared (their log moved past what the live service reports): %s\n", strings.Join(rep.Unsettled, ", "))
		}
	}
	if len(rep.Mismatches) > 0 || len(rep.Unsettled) > 0 {
		return fmt.Errorf("replayed state differs from the live service (%d differ, %d not settled)", len(rep.Mismatches), len(rep.Unsettled))
	}
	return nil
}
