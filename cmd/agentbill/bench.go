package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentbill/agentbill/bench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := bench.Config{}
	var jsonOut bool
	var cpuProfile, only string
	var soak time.Duration
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Clients, "clients", bench.ClientsDefault, "concurrent clients, each with its own connection")
	fs.IntVar(&cfg.Customers, "customers", bench.CustomersDefault, "customers in the spread scenario")
	fs.DurationVar(&cfg.Duration, "duration", bench.DurationDefault, "measured time per scenario")
	fs.Float64Var(&cfg.Rate, "rate", 0, "target preflight+record cycles/s over all clients (open loop); 0 = as fast as possible")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "measure an external NATS with `agentbill serve` running on it (default: embed both)")
	fs.IntVar(&cfg.Replicas, "replicas", 1, "replicas of the bare-append baseline stream: match serve --replicas (3 on an R3 cluster)")
	fs.BoolVar(&cfg.Webhooks, "webhooks", false, "publish alerts, send 1% of spread cycles to customers that raise them, and run the spread scenario again with one webhook endpoint delivering to a receiver on 127.0.0.1 ("+bench.ScenarioSpreadWebhook+")")
	fs.IntVar(&cfg.FloodRate, "flood-rate-limit", bench.FloodRateDefault, "the flood scenario's flooder's own rate_limit, preflights a second (burst twice that); 0: serve's default")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	fs.StringVar(&only, "only", "", "comma-separated scenarios to run (the request/reply baseline always runs)")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (writer included when embedded)")
	fs.DurationVar(&soak, "soak", 0, "run only the soak for this long (e.g. 30m): mixed traffic at a fixed pace, heap and goroutines sampled over time, and a verdict (BENCHMARKS.md, \"Soak\"); --json applies")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if soak != 0 {
		return runSoak(ctx, soak, jsonOut, stdout, stderr)
	}
	if only != "" {
		cfg.Only = strings.Split(only, ",")
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "agentbill bench: %v\n", err)
		return errUsage
	}
	if !jsonOut {
		cfg.Progress = stderr
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printReport(stdout, rep)
}

func printReport(w io.Writer, rep *bench.Report) error {
	fmt.Fprintf(w, "agentbill bench: %d clients, %d customers, GOMAXPROCS %d, fsync %s\n\n",
		rep.Clients, rep.Customers, rep.GoMaxProc, rep.Fsync)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tclients\tops/s\tcycles/s\tp50 us\tp99 us\tp99.9 us\tx req/reply\tcpu us/op\tx req/reply cpu\terrors\t")
	for _, r := range rep.Results {
		cycles, ratio, cpu, cpuRatio := "-", "-", "-", "-"
		if r.Ratio > 0 { // the baseline has none: it is the 1
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		if r.CyclesPerSec > 0 {
			cycles = fmt.Sprintf("%.0f", r.CyclesPerSec)
		}
		if r.CPUusPerOp > 0 {
			cpu = fmt.Sprintf("%.1f", r.CPUusPerOp)
		}
		if r.CPURatio > 0 {
			cpuRatio = fmt.Sprintf("%.2f", r.CPURatio)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%d\t\n",
			r.Scenario, r.Clients, r.OpsPerSec, cycles, r.P50us, r.P99us, r.P999us, ratio, cpu, cpuRatio, r.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, r := range rep.Results {
		if r.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Scenario, r.Note)
		}
	}
	return nil
}

// runSoak runs `bench --soak`; a failed verdict is an error (exit 1).
func runSoak(ctx context.Context, d time.Duration, jsonOut bool, stdout, stderr io.Writer) error {
	sc := bench.SoakConfig{Duration: d}
	if !jsonOut {
		sc.Progress = stderr
	}
	rep, err := bench.RunSoak(ctx, sc)
	if err != nil {
		if errors.Is(err, bench.ErrSoakConfig) {
			fmt.Fprintf(stderr, "agentbill bench: %v\n", err)
			return errUsage
		}
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		bench.PrintSoak(stdout, rep)
	}
	if !rep.Verdict.OK() {
		return errors.New("soak: the verdict failed")
	}
	return nil
}
