// Command go-worker is an example agent worker that speaks NATS to
// AgentBill: each run is gated (preflight, run, record; released if the run
// fails), and a refusal stops the worker with the reason.
//
//	go run ./examples/go-worker --customer user_123 --runs 3
//
// It connects to --nats-url (default $AGENTBILL_NATS_URL or
// nats://127.0.0.1:4222), where `agentbill serve` listens.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/nats-io/nats.go"
)

// Exit codes, as the agentbill CLI's.
const (
	exitError   = 1
	exitRefused = 3
)

// runsMax bounds --runs.
const runsMax = 1000

func main() {
	url := os.Getenv("AGENTBILL_NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	natsURL := flag.String("nats-url", url, "NATS server URL (env AGENTBILL_NATS_URL)")
	customer := flag.String("customer", "user_123", "customer the runs are for")
	runs := flag.Int("runs", 3, fmt.Sprintf("how many gated runs (at most %d)", runsMax))
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// With the repo's nats.conf, run as the agent user: AGENTBILL_NATS_USER=agent,
	// AGENTBILL_NATS_PASSWORD, AGENTBILL_NATS_INBOX_PREFIX=_INBOX_agent.
	nc, err := client.CredentialsFromEnv().Connect(*natsURL, nats.Name("agentbill-example-worker"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "connect %s: %v (is `agentbill serve` running?)\n", *natsURL, err)
		os.Exit(exitError)
	}
	defer nc.Close()
	err = work(ctx, client.New(nc), *customer, min(max(*runs, 0), runsMax), os.Stdout)
	var refused *client.RefusedError
	switch {
	case errors.As(err, &refused):
		fmt.Printf("refused (%s): %s\n", refused.Reason, refused.Message)
		os.Exit(exitRefused)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitError)
	}
}

// work does `runs` gated runs of the research agent for the customer.
func work(ctx context.Context, c *client.Client, customer string, runs int, out io.Writer) error {
	for i := range runs {
		res, err := c.Gate(ctx, client.GateOptions{
			CustomerID: customer, AgentID: "research_agent", EstimatedUnits: events.NewUnits(10, 0),
		}, func(ctx context.Context) (events.Units, error) {
			tokens, err := runAgent(ctx, i)
			return events.NewUnits(int64(tokens), -3), err // 1 unit per 1,000 tokens
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "run %d approved: reservation %s charged %s units; %s left\n",
			i+1, res.ReservationID, res.Record.ChargedUnits, res.Record.RemainingUnits)
	}
	return nil
}

// runAgent stands in for a model call; it reports the tokens used.
func runAgent(ctx context.Context, i int) (int, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(20 * time.Millisecond):
	}
	return 6000 + 500*i, nil
}
