package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runAlerts is `agentbill alerts rebuild`: make the alert stream
// AGENTBILL_EVENTS again from the log (it is derived from it). Run it
// while no serve writes: offline on a data directory (the embedded
// server, in process), or against --nats-url as the service.
func runAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rebuild" {
		fmt.Fprintln(stderr, "agentbill alerts: the only subcommand is `alerts rebuild`")
		return errUsage
	}
	fs := flag.NewFlagSet("alerts rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := addNATSFlags(fs, true) // --data: rebuild offline there, unless --nats-url is given
	maxAge := fs.Duration("alerts-max-age", projections.AlertMaxAgeDefault, "the stream's max age (as serve's --alerts-max-age)")
	replicas := fs.Int("replicas", 1, "stream replicas: 1, or 3 on a cluster (as serve's --replicas)")
	partitions := fs.Int("partitions", 1, "as serve's --partitions")
	pk := addPubKeyFlags(fs, "the log must be signed by before alerts are made from it")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	if *maxAge < projections.AlertMaxAgeMin || (*replicas != 1 && *replicas != 3) || *partitions < 1 || *partitions > events.PartitionsMax {
		fmt.Fprintf(stderr, "agentbill alerts rebuild: --alerts-max-age at least %s, --replicas 1 or 3, --partitions 1 to %d\n", projections.AlertMaxAgeMin, events.PartitionsMax)
		return errUsage
	}
	keys, err := pk.keyring(nf.dataDir)
	if err != nil {
		return err
	}
	var nc *nats.Conn
	if flagGiven(fs, "nats-url") {
		s, err := nf.connect(ctx, nats.Name("agentbill-alerts"))
		if err != nil {
			return err
		}
		defer s.close()
		nc, ctx = s.nc, s.ctx
	} else {
		srv, err := embedded.Start(embedded.Options{StoreDir: nf.dataDir})
		if err != nil {
			return err
		}
		defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
		if nc, err = srv.Connect("agentbill-alerts"); err != nil {
			return err
		}
		defer nc.Close()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	writers := []string{events.WriterDefault}
	if *partitions > 1 {
		writers = writers[:0]
		for p := range *partitions {
			writers = append(writers, strconv.Itoa(p))
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	n, err := projections.RebuildAlerts(ctx, js, *replicas, projections.AlertConfig{MaxAge: *maxAge}, writers, *partitions > 1, keys, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s rebuilt from the log: %d alerts (the last %s)\n", projections.AlertStream, n, *maxAge)
	return nil
}
