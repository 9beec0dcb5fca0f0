package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/webhooks"
	"github.com/nats-io/nats.go"
)

// webhooksTimeout bounds one webhooks subcommand (connect, registry
// calls, and test's one delivery).
const webhooksTimeout = 30 * time.Second

// listedEndpoint is one row of `webhooks list --json`: never the secret.
type listedEndpoint struct {
	*webhooks.Endpoint
	Pending *uint64          `json:"pending,omitempty"`
	Status  *webhooks.Status `json:"status"`
}

// runWebhooks dispatches `agentbill webhooks add|list|remove|resume|test`.
func runWebhooks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "agentbill webhooks: want `webhooks add`, `list`, `remove ID`, `resume ID` or `test ID`")
		return errUsage
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("webhooks "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := addNATSFlags(fs, true)
	jsonOut := fs.Bool("json", false, "print JSON")
	replicas := fs.Int("replicas", 1, "replicas of the webhook bucket if this creates it: 3 on a JetStream cluster (serve creates it with serve's --replicas)")
	var url, types, customer *string
	var allowPrivate *bool
	wantArgs := 1
	switch sub {
	case "add":
		url = fs.String("url", "", "the receiver's URL (https://...)")
		types = fs.String("types", "", "comma-separated alert types to deliver (default every one: budget_exhausted, budget_restored, threshold_crossed, denied)")
		customer = fs.String("customer", "", "deliver only this customer's alerts (default every customer)")
		allowPrivate = fs.Bool("allow-private", false, "allow a URL on loopback, link-local or private addresses (tests, on-premise receivers)")
		wantArgs = 0
	case "list":
		wantArgs = 0
	case "remove", "resume", "test":
	default:
		fmt.Fprintf(stderr, "agentbill webhooks: unknown subcommand %q; want add, list, remove, resume or test\n", sub)
		return errUsage
	}
	positional, err := parseInterleaved(fs, rest)
	if err != nil {
		return errUsage
	}
	if len(positional) != wantArgs {
		fmt.Fprintf(stderr, "agentbill webhooks %s: wrong arguments %q\n", sub, positional)
		return errUsage
	}
	if *replicas != 1 && *replicas != 3 {
		fmt.Fprintf(stderr, "agentbill webhooks: --replicas %d: use 1, or 3 on a cluster\n", *replicas)
		return errUsage
	}
	var req webhooks.AddRequest
	if sub == "add" {
		if req, err = addRequest(*url, *types, *customer, *allowPrivate); err != nil {
			fmt.Fprintf(stderr, "agentbill webhooks add: %v\n", err)
			return errUsage
		}
	}

	ctx, cancel := context.WithTimeout(ctx, webhooksTimeout)
	defer cancel()
	s, err := nf.connect(ctx, nats.Name("agentbill-webhooks"), nats.Timeout(webhooksTimeout))
	if err != nil {
		return err
	}
	defer s.close()
	reg, err := webhooks.OpenRegistry(s.ctx, s.nc, webhooks.Options{Replicas: *replicas})
	if err != nil {
		return s.explain(err)
	}
	switch sub {
	case "add":
		err = webhooksAdd(s.ctx, reg, req, *jsonOut, stdout)
	case "list":
		err = webhooksList(s.ctx, reg, *jsonOut, stdout)
	case "remove":
		err = webhooksRemove(s.ctx, reg, positional[0], *jsonOut, stdout)
	case "resume":
		err = webhooksResume(s.ctx, reg, positional[0], *jsonOut, stdout)
	default:
		err = webhooksTest(s.ctx, reg, positional[0], *jsonOut, stdout)
	}
	return s.explain(webhookError(err))
}

// addRequest checks add's flags that need no server.
func addRequest(url, types, customer string, allowPrivate bool) (webhooks.AddRequest, error) {
	if url == "" {
		return webhooks.AddRequest{}, errors.New("--url is required")
	}
	ts, err := webhooks.ParseTypes(types)
	if err != nil {
		return webhooks.AddRequest{}, err
	}
	return webhooks.AddRequest{URL: url, Types: ts, CustomerID: customer, AllowPrivate: allowPrivate}, nil
}

func webhooksAdd(ctx context.Context, reg *webhooks.Registry, req webhooks.AddRequest, jsonOut bool, stdout io.Writer) error {
	ep, err := reg.Add(ctx, req)
	if err != nil {
		return err
	}
	if jsonOut {
		return printJSON(stdout, ep) // with, this once, the secret
	}
	_, err = fmt.Fprintf(stdout, "%s\n%s\n\nendpoint %s: %s, %s, %s. The second line is the signing secret: this is the only\n"+
		"time it is shown. Verify deliveries with it (docs/webhooks.md).\n",
		ep.ID, ep.Secret, ep.ID, ep.URL, typesText(ep), customerText(ep))
	return err
}

func typesText(ep *webhooks.Endpoint) string {
	if len(ep.Types) == 0 {
		return "every alert type"
	}
	s := ""
	for i, t := range ep.Types {
		if i > 0 {
			s += ","
		}
		s += string(t)
	}
	return s
}

func customerText(ep *webhooks.Endpoint) string {
	if ep.CustomerID == "" {
		return "every customer"
	}
	return "customer " + ep.CustomerID
}

func webhooksList(ctx context.Context, reg *webhooks.Registry, jsonOut bool, stdout io.Writer) error {
	list, err := reg.List(ctx)
	if err != nil {
		return err
	}
	rows := make([]listedEndpoint, 0, len(list))
	for _, ep := range list {
		row := listedEndpoint{Endpoint: ep.Public()}
		if n, err := reg.Pending(ctx, ep.ID); err == nil {
			row.Pending = &n
		}
		if row.Status, err = reg.Status(ctx, ep.ID); err != nil {
			return err
		}
		rows = append(rows, row)
	}
	if jsonOut {
		return printJSON(stdout, rows)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tPENDING\tLAST SUCCESS\tLAST ERROR\tTYPES\tCUSTOMER\tURL")
	for _, r := range rows {
		pending, success, lastErr := "?", "-", "-"
		if r.Pending != nil {
			pending = fmt.Sprint(*r.Pending)
		}
		if r.Status.LastSuccessAt != nil {
			success = r.Status.LastSuccessAt.Format(time.RFC3339)
		}
		if r.Status.LastError != "" {
			lastErr = r.Status.LastErrorAt.Format(time.RFC3339) + " " + oneLine(r.Status.LastError, 60)
		}
		state := string(r.State)
		if r.StateReason != "" {
			state += " (" + oneLine(r.StateReason, 40) + ")"
		}
		cust := r.CustomerID
		if cust == "" {
			cust = "*"
		}
		types := "*"
		if len(r.Types) > 0 {
			types = typesText(r.Endpoint)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, state, pending, success, lastErr, types, cust, r.URL)
	}
	return tw.Flush()
}

// oneLine shortens s to n runes on one line, for a table cell.
func oneLine(s string, n int) string {
	r := []rune(s)
	for i, c := range r {
		if c == '\n' || c == '\t' {
			r[i] = ' '
		}
	}
	if len(r) > n {
		return string(r[:n]) + "..."
	}
	return string(r)
}

func webhooksRemove(ctx context.Context, reg *webhooks.Registry, id string, jsonOut bool, stdout io.Writer) error {
	if err := reg.Remove(ctx, id); err != nil {
		return err
	}
	if jsonOut {
		return printJSON(stdout, map[string]string{"id": id, "removed": "true"})
	}
	_, err := fmt.Fprintf(stdout, "endpoint %s removed, with its undelivered events\n", id)
	return err
}

func webhooksResume(ctx context.Context, reg *webhooks.Registry, id string, jsonOut bool, stdout io.Writer) error {
	ep, err := reg.Resume(ctx, id)
	if err != nil {
		return err
	}
	if jsonOut {
		return printJSON(stdout, ep.Public())
	}
	_, err = fmt.Fprintf(stdout, "endpoint %s active: the leader delivers what waited, oldest first\n", id)
	return err
}

// webhooksTest sends a synthetic event from this process, through the
// same sender as serve (webhooks.SendTest), and fails if it was not
// accepted.
func webhooksTest(ctx context.Context, reg *webhooks.Registry, id string, jsonOut bool, stdout io.Writer) error {
	ep, _, err := reg.Get(ctx, id)
	if err != nil {
		return err
	}
	s := webhooks.NewSender(0, nil)
	defer s.Close()
	eventID, a, err := webhooks.SendTest(ctx, s, ep)
	if err != nil {
		return err
	}
	if jsonOut {
		out := map[string]any{"id": ep.ID, "event_id": eventID, "outcome": a.Outcome, "status": a.Status, "took_ms": a.Took.Milliseconds()}
		if a.Err != nil {
			out["error"] = a.Err.Error()
		}
		if err := printJSON(stdout, out); err != nil {
			return err
		}
	} else if a.Err == nil {
		fmt.Fprintf(stdout, "endpoint %s accepted test event %s: HTTP %d in %s\n", ep.ID, eventID, a.Status, a.Took.Round(time.Millisecond))
	}
	if a.Err != nil {
		return ledger.Errorf(ledger.CodeUnavailable, "endpoint %s did not accept test event %s (%s): %v", ep.ID, eventID, a.Outcome, a.Err)
	}
	return nil
}

// webhookError gives registry errors the code the CLI reports.
func webhookError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, webhooks.ErrInvalid), errors.Is(err, webhooks.ErrPrivateAddress), errors.Is(err, webhooks.ErrLimit):
		return ledger.Errorf(ledger.CodeInvalidArgument, "%v", err)
	case errors.Is(err, webhooks.ErrNotFound):
		return ledger.Errorf(ledger.CodeNotFound, "%v", err)
	case errors.Is(err, webhooks.ErrNoAlertStream):
		return ledger.Errorf(ledger.CodeUnavailable, "%v", err)
	}
	return err
}
