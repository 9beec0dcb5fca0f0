package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
)

// keysTimeout bounds one keys subcommand (connect and store calls).
const keysTimeout = 15 * time.Second

// createdKey is what `keys create --json` prints: the record and, this
// once, the key itself.
type createdKey struct {
	Secret string `json:"key"`
	*keys.Key
}

// runKeys dispatches `agentbill keys create|list|revoke`.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "agentbill keys: want `keys create`, `keys list` or `keys revoke ID`")
		return errUsage
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := addNATSFlags(fs, true)
	jsonOut := fs.Bool("json", false, "print JSON")
	replicas := fs.Int("replicas", 1, "replicas of the key bucket if this creates it: 3 on a JetStream cluster (serve --http creates it with serve's --replicas)")
	var role, customer, name *string
	switch sub {
	case "create":
		role = fs.String("role", "", "agent, admin or auditor")
		customer = fs.String("customer", "", "bind the key to this customer (default: any customer)")
		name = fs.String("name", "", "a label for the key, shown by `keys list`")
	case "list", "revoke":
	default:
		fmt.Fprintf(stderr, "agentbill keys: unknown subcommand %q; want create, list or revoke\n", sub)
		return errUsage
	}
	positional, err := parseInterleaved(fs, rest)
	if err != nil {
		return errUsage
	}
	wantArgs := 0
	if sub == "revoke" {
		wantArgs = 1
	}
	if len(positional) != wantArgs {
		fmt.Fprintf(stderr, "agentbill keys %s: wrong arguments %q\n", sub, positional)
		return errUsage
	}
	if *replicas != 1 && *replicas != 3 {
		fmt.Fprintf(stderr, "agentbill keys: --replicas %d: use 1, or 3 on a cluster\n", *replicas)
		return errUsage
	}
	if sub == "create" && *role == "" {
		fmt.Fprintln(stderr, "agentbill keys create: --role agent|admin|auditor is required")
		return errUsage
	}

	ctx, cancel := context.WithTimeout(ctx, keysTimeout)
	defer cancel()
	s, err := nf.connect(ctx, nats.Name("agentbill-keys"), nats.Timeout(keysTimeout))
	if err != nil {
		return err
	}
	defer s.close()
	store, err := keys.Open(s.ctx, s.nc, keys.Options{Replicas: *replicas})
	if err != nil {
		return s.explain(err)
	}
	switch sub {
	case "create":
		err = keysCreate(s.ctx, store, keys.Role(*role), *customer, *name, *jsonOut, stdout)
	case "list":
		err = keysList(s.ctx, store, *jsonOut, stdout)
	default:
		err = keysRevoke(s.ctx, store, positional[0], *jsonOut, stdout)
	}
	return s.explain(err)
}

func keysCreate(ctx context.Context, store *keys.Store, role keys.Role, customer, name string, jsonOut bool, stdout io.Writer) error {
	secret, k, err := store.Create(ctx, role, customer, name)
	if err != nil {
		return keyError(err)
	}
	if jsonOut {
		return printJSON(stdout, createdKey{Secret: secret, Key: k})
	}
	scope := "any customer"
	if k.CustomerID != "" {
		scope = "customer " + k.CustomerID
	}
	_, err = fmt.Fprintf(stdout, "%s\n\nkey %s: role %s, %s. This is the only time the key is shown;\n"+
		"only its SHA-256 is stored. Send it as: Authorization: Bearer <key>\n", secret, k.ID, k.Role, scope)
	return err
}

func keysList(ctx context.Context, store *keys.Store, jsonOut bool, stdout io.Writer) error {
	list, err := store.List(ctx)
	if err != nil {
		return err
	}
	if jsonOut {
		if list == nil {
			list = []*keys.Key{}
		}
		return printJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPREFIX\tROLE\tCUSTOMER\tCREATED\tREVOKED\tNAME")
	for _, k := range list {
		cust, rev := k.CustomerID, ""
		if cust == "" {
			cust = "*"
		}
		if k.RevokedAt != nil {
			rev = k.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s...\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Role, cust,
			k.CreatedAt.Format(time.RFC3339), rev, k.Name)
	}
	return tw.Flush()
}

func keysRevoke(ctx context.Context, store *keys.Store, id string, jsonOut bool, stdout io.Writer) error {
	k, err := store.Revoke(ctx, id)
	if err != nil {
		return keyError(err)
	}
	if jsonOut {
		return printJSON(stdout, k)
	}
	_, err = fmt.Fprintf(stdout, "key %s revoked at %s\n", k.ID, k.RevokedAt.Format(time.RFC3339))
	return err
}

// parseInterleaved parses flags that may come before or after positional
// arguments (`keys revoke ID --json`), and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// keyError gives store errors the code the CLI reports.
func keyError(err error) error {
	switch {
	case errors.Is(err, keys.ErrInvalid):
		return ledger.Errorf(ledger.CodeInvalidArgument, "%v", err)
	case errors.Is(err, keys.ErrNotFound):
		return ledger.Errorf(ledger.CodeNotFound, "%v", err)
	}
	return err
}
