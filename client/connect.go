package client

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// Environment variables Credentials reads (CredentialsFromEnv); the CLI's
// --nats-user, --nats-password, --nats-creds, --nats-nkey and
// --nats-inbox-prefix flags default to them.
const (
	EnvUser        = "AGENTBILL_NATS_USER"
	EnvPassword    = "AGENTBILL_NATS_PASSWORD"
	EnvCredsFile   = "AGENTBILL_NATS_CREDS"
	EnvNKeyFile    = "AGENTBILL_NATS_NKEY"
	EnvInboxPrefix = "AGENTBILL_NATS_INBOX_PREFIX"
)

// Credentials says how to authenticate to NATS: a user and password, a
// creds file (JWT and seed), or an nkey seed file; at most one of them.
// InboxPrefix replaces _INBOX for replies: the repo's nats.conf lets each
// user subscribe only under its own prefix (_INBOX_<user>).
type Credentials struct {
	User        string
	Password    string
	CredsFile   string
	NKeyFile    string
	InboxPrefix string
}

// CredentialsFromEnv reads the AGENTBILL_NATS_* variables.
func CredentialsFromEnv() Credentials {
	return Credentials{
		User:        os.Getenv(EnvUser),
		Password:    os.Getenv(EnvPassword),
		CredsFile:   os.Getenv(EnvCredsFile),
		NKeyFile:    os.Getenv(EnvNKeyFile),
		InboxPrefix: os.Getenv(EnvInboxPrefix),
	}
}

// Validate reports every problem at once.
func (c Credentials) Validate() error {
	var errs []error
	n := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.CredsFile != "", c.NKeyFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, errors.New("nats credentials: give one of user/password, a creds file or an nkey seed file"))
	}
	if c.Password != "" && c.User == "" {
		errs = append(errs, errors.New("nats credentials: a password needs a user"))
	}
	if p := c.InboxPrefix; p != "" && (strings.ContainsAny(p, "*> \t\r\n") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".")) {
		errs = append(errs, fmt.Errorf("nats inbox prefix %q: want subject tokens without wildcards, like _INBOX_agent", p))
	}
	return errors.Join(errs...)
}

// Options returns the nats.Connect options for these credentials (none if
// they are empty). It reads an nkey seed file, so it can fail.
func (c Credentials) Options() ([]nats.Option, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.CredsFile != "":
		if _, err := os.Stat(c.CredsFile); err != nil {
			return nil, fmt.Errorf("nats creds file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed file: %w", err)
		}
		opts = append(opts, o)
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	return opts, nil
}

// Connect connects to url with these credentials and any further options.
func (c Credentials) Connect(url string, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	return nats.Connect(url, append(opts, extra...)...)
}
