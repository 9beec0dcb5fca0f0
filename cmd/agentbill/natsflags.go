package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
)

// natsFlags are the connection flags every subcommand that talks to NATS
// takes: the URL and the credentials (nats.conf's users; SECURITY.md).
type natsFlags struct {
	url   string
	creds client.Credentials
	// denied receives the first permission violation the server reports
	// on the connection (asynchronously: the request itself would only
	// time out, after every retry).
	denied chan error
}

// addNATSFlags registers --nats-url (unless withURL is false: serve has its
// own) and the credential flags on fs, with defaults from the environment.
func addNATSFlags(fs *flag.FlagSet, withURL bool) *natsFlags {
	f := &natsFlags{denied: make(chan error, 1)}
	env := client.CredentialsFromEnv()
	if withURL {
		url := os.Getenv("AGENTBILL_NATS_URL")
		if url == "" {
			url = DefaultNATSURL
		}
		fs.StringVar(&f.url, "nats-url", url, "NATS server URL (env AGENTBILL_NATS_URL)")
	}
	fs.StringVar(&f.creds.User, "nats-user", env.User, "NATS user (env "+client.EnvUser+")")
	fs.StringVar(&f.creds.Password, "nats-password", env.Password, "NATS password (env "+client.EnvPassword+"; prefer the env: flags show in ps)")
	fs.StringVar(&f.creds.CredsFile, "nats-creds", env.CredsFile, "NATS creds file, JWT and seed (env "+client.EnvCredsFile+")")
	fs.StringVar(&f.creds.NKeyFile, "nats-nkey", env.NKeyFile, "NATS nkey seed file (env "+client.EnvNKeyFile+")")
	fs.StringVar(&f.creds.InboxPrefix, "nats-inbox-prefix", env.InboxPrefix, "reply inbox prefix, e.g. _INBOX_agent (env "+client.EnvInboxPrefix+")")
	return f
}

// connect connects to the URL with the credentials.
func (f *natsFlags) connect(opts ...nats.Option) (*nats.Conn, error) {
	onErr := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case f.denied <- err:
			default:
			}
		}
	})
	nc, err := f.creds.Connect(f.url, append(opts, onErr)...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w (is `agentbill serve` running? are the credentials right?)", f.url, err)
	}
	return nc, nil
}

// failFast returns a context that ends as soon as the server reports a
// permission violation on the connection, and a function that turns the
// error of a call made with it into permission_denied when that was why.
func (f *natsFlags) failFast(ctx context.Context) (context.Context, func(error) error, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case err := <-f.denied:
			cancel(ledger.Errorf(ledger.CodePermissionDenied, "%v", err))
		case <-ctx.Done():
		}
	}()
	explain := func(err error) error {
		var le *ledger.Error
		if err != nil && errors.As(context.Cause(ctx), &le) {
			return le
		}
		return err
	}
	return ctx, explain, func() { cancel(nil) }
}
