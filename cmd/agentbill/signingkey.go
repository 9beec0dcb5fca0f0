package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/signing"
)

// runSigningKey is `agentbill signing-key show|rotate`: the commit-signing
// key serve keeps in its data directory (SECURITY.md "Signed commits").
// Both work on the files alone; rotate takes effect when serve restarts.
func runSigningKey(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "show" && args[0] != "rotate") {
		fmt.Fprintln(stderr, "agentbill signing-key: show or rotate")
		return errUsage
	}
	flags := flag.NewFlagSet("signing-key "+args[0], flag.ContinueOnError)
	flags.SetOutput(stderr)
	data := flags.String("data", defaultDataDir(), "serve's data directory (env "+EnvDataDir+")")
	key := flags.String("signing-key", "", "the private key file (default DATA/"+signing.KeyFile+")")
	trusted := flags.String("trusted-keys", "", "the trusted public keys file (default DATA/"+signing.TrustedFile+")")
	if err := flags.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *key == "" {
		*key = filepath.Join(*data, signing.KeyFile)
	}
	if *trusted == "" {
		*trusted = filepath.Join(*data, signing.TrustedFile)
	}
	if args[0] == "rotate" {
		oldID, newID, err := signing.Rotate(*key, *trusted)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new signing key %s in %s; the old one, %s, is now trusted in %s\n", newID, *key, oldID, *trusted)
		fmt.Fprintln(stdout, "restart every serve of this ledger with the new key file to sign with it")
		return nil
	}
	k, err := signing.Load(*key)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no signing key at %s: serve creates one on its first start (or pass --data)", *key)
	}
	if err != nil {
		return err
	}
	others, err := signing.ReadPublicKeys(*trusted)
	if err != nil {
		return err
	}
	pub := k.Public().(ed25519.PublicKey)
	fmt.Fprintf(stdout, "signing key %s (%s)\n", events.KeyID(pub), *key)
	for _, o := range others {
		fmt.Fprintf(stdout, "trusted key %s (%s)\n", events.KeyID(o), *trusted)
	}
	return nil
}
