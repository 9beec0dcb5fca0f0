package events

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Authenticated commits. The hash chain (ChainHeader) makes a changed,
// removed or inserted commit evident, but anyone who can publish on the
// log can recompute it. So every commit also carries, in SigHeader, an
// Ed25519 signature made with a key only the service holds:
//
//	Agentbill-Sig: <key id>:<base64 signature>
//
// over "agentbill-commit-v1\x00" + subject + "\x00" + h(n), where h(n) is
// the commit's chain hash (ChainHash of its Agentbill-Chain-Prev header
// and its body). The signature thus covers the body, the link to the
// commit before it and the writer subject it was appended to: a commit
// moved to another writer's subject, or published again later in the log,
// fails its chain link even though its signature is genuine, and a commit
// whose signature verifies vouches for its writer's whole chain before it.
//
// The key id is the first 8 bytes of SHA-256 of the public key, in hex,
// so a verifier holding several keys (after a rotation) knows which to
// use. Snapshots are signed the same way (SignSnapshot).
const SigHeader = "Agentbill-Sig"

// KeyIDBytes is how many bytes of the public key's SHA-256 name a key.
const KeyIDBytes = 8

// Signature domains: a commit signature can never pass for a snapshot's.
const (
	commitSigDomain   = "agentbill-commit-v1\x00"
	snapshotSigDomain = "agentbill-snapshot-v1\x00"
)

// Signature errors, wrapped with the detail.
var (
	ErrUnsigned     = errors.New("no signature")
	ErrBadSignature = errors.New("bad signature")
	ErrUnknownKey   = errors.New("signed with a key not trusted here")
)

// KeyID returns the id of a public key (KeyIDBytes of its SHA-256, hex).
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:KeyIDBytes])
}

// Signer signs commits and snapshots with the service's private key.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer for key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// KeyID is the id of the signer's public key.
func (s *Signer) KeyID() string { return s.id }

// Public returns the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// SignCommit returns the SigHeader value for a commit on subject whose
// chain hash is chainHash (ChainHash(prev, body)).
func (s *Signer) SignCommit(subject, chainHash string) string {
	return s.sign(commitMessage(subject, chainHash))
}

// SignSnapshot returns the signature of a snapshot: the writer and
// sequence it is of, the commit at that sequence, and the SHA-256 digest
// the snapshot ends with.
func (s *Signer) SignSnapshot(writer string, seq uint64, commit string, digest []byte) string {
	return s.sign(snapshotMessage(writer, seq, commit, digest))
}

func (s *Signer) sign(msg []byte) string {
	return s.id + ":" + base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, msg))
}

func commitMessage(subject, chainHash string) []byte {
	return []byte(commitSigDomain + subject + "\x00" + chainHash)
}

func snapshotMessage(writer string, seq uint64, commit string, digest []byte) []byte {
	return []byte(snapshotSigDomain + writer + "\x00" + strconv.FormatUint(seq, 10) + "\x00" + commit + "\x00" + hex.EncodeToString(digest))
}

// Keyring is the set of public keys whose signatures are trusted, by id.
type Keyring map[string]ed25519.PublicKey

// NewKeyring returns a keyring holding keys.
func NewKeyring(keys ...ed25519.PublicKey) Keyring {
	k := Keyring{}
	for _, pub := range keys {
		k.Add(pub)
	}
	return k
}

// Add trusts pub.
func (k Keyring) Add(pub ed25519.PublicKey) { k[KeyID(pub)] = pub }

// IDs returns the ids of the trusted keys.
func (k Keyring) IDs() []string {
	ids := make([]string, 0, len(k))
	for id := range k {
		ids = append(ids, id)
	}
	return ids
}

// VerifyCommit checks a commit's SigHeader value sig against its subject
// and chain hash. It returns an error wrapping ErrUnsigned,
// ErrBadSignature or ErrUnknownKey.
func (k Keyring) VerifyCommit(subject, chainHash, sig string) error {
	return k.verify(commitMessage(subject, chainHash), sig)
}

// VerifySnapshot checks a snapshot's signature (Signer.SignSnapshot).
func (k Keyring) VerifySnapshot(writer string, seq uint64, commit string, digest []byte, sig string) error {
	return k.verify(snapshotMessage(writer, seq, commit, digest), sig)
}

func (k Keyring) verify(msg []byte, sig string) error {
	if sig == "" {
		return ErrUnsigned
	}
	id, b64, ok := strings.Cut(sig, ":")
	if !ok {
		return fmt.Errorf("%w: %q is not <key id>:<signature>", ErrBadSignature, sig)
	}
	pub, ok := k[id]
	if !ok {
		return fmt.Errorf("%w: key %q", ErrUnknownKey, id)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("%w: not a base64 Ed25519 signature", ErrBadSignature)
	}
	if !ed25519.Verify(pub, msg, raw) {
		return fmt.Errorf("%w: key %s does not sign this", ErrBadSignature, id)
	}
	return nil
}
