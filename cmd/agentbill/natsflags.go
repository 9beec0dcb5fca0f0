package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
)

// EnvDataDir names serve's data directory when --data is not given; the
// client subcommands look there for the local admin credential.
const EnvDataDir = "AGENTBILL_DATA"

// dataDirDefault is --data when neither the flag nor EnvDataDir is set.
const dataDirDefault = "./data"

// defaultDataDir is $AGENTBILL_DATA, or ./data.
func defaultDataDir() string {
	if d := os.Getenv(EnvDataDir); d != "" {
		return d
	}
	return dataDirDefault
}

// natsFlags are the connection flags every subcommand that talks to NATS
// takes: the URL and the credentials (nats.conf's users; SECURITY.md), and
// serve's data directory, whose local admin credential is used when no
// credential is given.
type natsFlags struct {
	url     string
	creds   client.Credentials
	dataDir string
}

// addNATSFlags registers --nats-url and --data (unless withURL is false:
// serve has its own) and the credential flags on fs, with defaults from
// the environment.
func addNATSFlags(fs *flag.FlagSet, withURL bool) *natsFlags {
	f := &natsFlags{}
	env := client.CredentialsFromEnv()
	if withURL {
		url := os.Getenv("AGENTBILL_NATS_URL")
		if url == "" {
			url = DefaultNATSURL
		}
		fs.StringVar(&f.url, "nats-url", url, "NATS server URL (env AGENTBILL_NATS_URL)")
		fs.StringVar(&f.dataDir, "data", defaultDataDir(), "serve's data directory: with no NATS credential given, connect as the local admin if it holds "+
			embedded.AdminKeyFile+" (env "+EnvDataDir+"; '' to connect anonymously)")
	}
	fs.StringVar(&f.creds.User, "nats-user", env.User, "NATS user (env "+client.EnvUser+")")
	fs.StringVar(&f.creds.Password, "nats-password", env.Password, "NATS password (env "+client.EnvPassword+"; prefer the env: flags show in ps)")
	fs.StringVar(&f.creds.CredsFile, "nats-creds", env.CredsFile, "NATS creds file, JWT and seed (env "+client.EnvCredsFile+")")
	fs.StringVar(&f.creds.NKeyFile, "nats-nkey", env.NKeyFile, "NATS nkey seed file (env "+client.EnvNKeyFile+")")
	fs.StringVar(&f.creds.InboxPrefix, "nats-inbox-prefix", env.InboxPrefix, "reply inbox prefix, e.g. _INBOX_agent (env "+client.EnvInboxPrefix+")")
	return f
}

// session is a connection and a context that ends, with a
// permission_denied cause, as soon as the server reports a permission
// violation on the connection: NATS reports those asynchronously, so the
// call that caused one would otherwise only time out, after every retry.
type session struct {
	nc     *nats.Conn
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// connect connects to the URL with the credentials; calls made with the
// session's ctx fail fast on a permission violation.
func (f *natsFlags) connect(ctx context.Context, opts ...nats.Option) (*session, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	onErr := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			cancel(ledger.Errorf(ledger.CodePermissionDenied, "%v", err))
		}
	})
	creds, admin, err := f.credentials()
	if err != nil {
		cancel(nil)
		return nil, err
	}
	nc, err := creds.Connect(f.url, append(opts, onErr)...)
	if err != nil {
		cancel(nil)
		if admin {
			return nil, fmt.Errorf("connect %s as the local admin (%s): %w (is `agentbill serve` running, on this data directory, without --nats-config? give --data or the credential flags otherwise)", f.url, creds.NKeyFile, err)
		}
		return nil, fmt.Errorf("connect %s: %w (is `agentbill serve` running? are the credentials right?)", f.url, err)
	}
	return &session{nc: nc, ctx: ctx, cancel: cancel}, nil
}

// credentials are the credentials given by flag or environment; or, when
// none is, the local admin's if the data directory holds its seed
// (admin is then true); or none (an anonymous client: an agent). A seed
// file that exists but is unusable (too open, malformed) is an error, not
// a silent fall back to fewer rights.
func (f *natsFlags) credentials() (c client.Credentials, admin bool, err error) {
	c = f.creds
	if c.User != "" || c.Password != "" || c.CredsFile != "" || c.NKeyFile != "" || f.dataDir == "" {
		return c, false, nil
	}
	path := embedded.AdminKeyPath(f.dataDir)
	if _, err := embedded.ReadAdminKey(path); errors.Is(err, fs.ErrNotExist) {
		return c, false, nil
	} else if err != nil {
		return c, false, err
	}
	c.NKeyFile = path
	if c.InboxPrefix == "" {
		c.InboxPrefix = embedded.AdminInboxPrefix
	}
	return c, true, nil
}

// explain turns the error of a call made with s.ctx into permission_denied
// when a permission violation is why it failed.
func (s *session) explain(err error) error {
	var le *ledger.Error
	if err != nil && errors.As(context.Cause(s.ctx), &le) {
		return le
	}
	return err
}

// close ends the context and closes the connection.
func (s *session) close() {
	s.cancel(nil)
	s.nc.Close()
}
