package main

import (
	"flag"
	"path/filepath"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/signing"
)

// pubKeyFlags are --public-keys and --no-signatures: the service's public
// keys a command checks the log's signatures with.
type pubKeyFlags struct {
	path string
	none bool
}

// addPubKeyFlags registers them on fs; what says what the keys check.
func addPubKeyFlags(fs *flag.FlagSet, what string) *pubKeyFlags {
	f := &pubKeyFlags{}
	fs.StringVar(&f.path, "public-keys", "", "PEM file of the service's public keys "+what+" (default DATA/"+signing.PublicFile+", which serve writes)")
	fs.BoolVar(&f.none, "no-signatures", false, "do not check the log's signatures")
	return f
}

// keyring reads the keys (from DATA/signing.pub unless --public-keys);
// nil with --no-signatures. No key at all is an error: checking against
// nothing would pass a forgery.
func (f *pubKeyFlags) keyring(dataDir string) (events.Keyring, error) {
	if f.none {
		return nil, nil
	}
	path := f.path
	if path == "" {
		path = filepath.Join(dataDir, signing.PublicFile)
	}
	pubs, err := signing.ReadPublicKeys(path)
	if err != nil {
		return nil, err
	}
	if len(pubs) == 0 {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument,
			"no public keys in %s: pass --public-keys FILE (serve writes it as DATA/%s), or --no-signatures", path, signing.PublicFile)
	}
	return events.NewKeyring(pubs...), nil
}
