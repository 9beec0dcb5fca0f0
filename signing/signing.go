// Package signing keeps the service's commit-signing key and the public
// keys that verify it, as files in the data directory (PEM: PKCS #8 for
// the private key, PKIX for public keys, so openssl reads both).
//
//	signing.key  the private key, owner-only (0600), never in a backup
//	trusted.pub  public keys trusted besides the current one (earlier
//	             keys after a rotation, a restored ledger's keys)
//	signing.pub  written by serve: the current public key and every
//	             trusted one, for auditors (agentbill audit verify)
//
// See docs in SECURITY.md ("Signed commits").
package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/agentbill/agentbill/events"
)

// File names in the data directory.
const (
	KeyFile     = "signing.key"
	TrustedFile = "trusted.pub"
	PublicFile  = "signing.pub"
)

// KeyFileMode is the private key's permission bits; a key file readable
// by group or others is refused.
const KeyFileMode = 0o600

// PublicKeysMax bounds the keys one public key file may hold.
const PublicKeysMax = 1024

const (
	privateBlock = "PRIVATE KEY"
	publicBlock  = "PUBLIC KEY"
)

// LoadOrCreate reads the private key at path, or creates one there if
// there is none. Creation is atomic (written aside, then linked into
// place), so processes starting together on a shared path all end up with
// the one key that won. created reports whether this call made it.
func LoadOrCreate(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".signing-*.tmp")
	if err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	werr := pem.Encode(tmp, &pem.Block{Type: privateBlock, Bytes: der})
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, false, fmt.Errorf("signing key: %w", werr)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		key, err = Load(path) // another process made it first
		return key, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	return key, true, nil
}

// Load reads the private key at path. It refuses a file that others can
// read, or that holds anything but one Ed25519 PKCS #8 key.
func Load(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&^KeyFileMode != 0 {
		return nil, fmt.Errorf("signing key %s: mode %v lets others read it; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != privateBlock || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("signing key %s: want one PEM %q block", path, privateBlock)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: %T is not an Ed25519 key", path, k)
	}
	return key, nil
}

// ReadPublicKeys reads the PEM public keys in path. A missing file holds
// none.
func ReadPublicKeys(path string) ([]ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []ed25519.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != publicBlock {
			return nil, fmt.Errorf("public keys %s: a %q block; want only %q", path, blk.Type, publicBlock)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public keys %s: %w", path, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public keys %s: %T is not an Ed25519 key", path, k)
		}
		if len(keys) == PublicKeysMax {
			return nil, fmt.Errorf("public keys %s: more than %d", path, PublicKeysMax)
		}
		keys = append(keys, pub)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return nil, fmt.Errorf("public keys %s: text that is not a PEM block", path)
	}
	return keys, nil
}

// WritePublicKeys writes keys to path as PEM, atomically, readable by all
// (they are public).
func WritePublicKeys(path string, keys []ed25519.PublicKey) error {
	var buf bytes.Buffer
	seen := map[string]bool{}
	for _, pub := range keys {
		id := events.KeyID(pub)
		if seen[id] {
			continue
		}
		seen[id] = true
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return err
		}
		fmt.Fprintf(&buf, "# key id %s\n", id)
		if err := pem.Encode(&buf, &pem.Block{Type: publicBlock, Bytes: der}); err != nil {
			return err
		}
	}
	// A temporary file of its own: writers sharing a data directory may
	// publish at the same moment.
	f, err := os.CreateTemp(filepath.Dir(path), ".public-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(buf.Bytes())
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o644)
	}
	if werr != nil {
		return werr
	}
	return os.Rename(f.Name(), path)
}

// Keys is the service's signing setup: its signer, and the keyring of
// every key it trusts (its own and trusted.pub's).
type Keys struct {
	Signer  *events.Signer
	Keyring events.Keyring
	// Trusted are the keys trusted besides the signer's own.
	Trusted []ed25519.PublicKey
}

// Open loads (or creates) the private key at keyPath and the trusted
// public keys at trustedPath, and writes every trusted public key,
// the signer's first, to publicPath for auditors ("" to skip).
func Open(keyPath, trustedPath, publicPath string) (*Keys, bool, error) {
	key, created, err := LoadOrCreate(keyPath)
	if err != nil {
		return nil, false, err
	}
	trusted, err := ReadPublicKeys(trustedPath)
	if err != nil {
		return nil, false, err
	}
	k := &Keys{Signer: events.NewSigner(key), Trusted: trusted}
	k.Keyring = events.NewKeyring(append([]ed25519.PublicKey{k.Signer.Public()}, trusted...)...)
	if publicPath != "" {
		if err := WritePublicKeys(publicPath, k.All()); err != nil {
			return nil, false, fmt.Errorf("public keys %s: %w", publicPath, err)
		}
	}
	return k, created, nil
}

// All returns the signer's public key and then every trusted one.
func (k *Keys) All() []ed25519.PublicKey {
	return append([]ed25519.PublicKey{k.Signer.Public()}, k.Trusted...)
}

// Rotate replaces the private key at keyPath with a new one and adds the
// old key's public half to trustedPath, so commits it signed still
// verify. The service must be restarted to sign with the new key.
func Rotate(keyPath, trustedPath string) (oldID, newID string, err error) {
	old, err := Load(keyPath)
	if err != nil {
		return "", "", err
	}
	trusted, err := ReadPublicKeys(trustedPath)
	if err != nil {
		return "", "", err
	}
	oldPub := old.Public().(ed25519.PublicKey)
	if err := WritePublicKeys(trustedPath, append(trusted, oldPub)); err != nil {
		return "", "", err
	}
	aside := keyPath + ".old"
	if err := os.Rename(keyPath, aside); err != nil {
		return "", "", err
	}
	key, _, err := LoadOrCreate(keyPath)
	if err != nil {
		_ = os.Rename(aside, keyPath)
		return "", "", err
	}
	if err := os.Remove(aside); err != nil {
		return "", "", err
	}
	return events.KeyID(oldPub), events.KeyID(key.Public().(ed25519.PublicKey)), nil
}
