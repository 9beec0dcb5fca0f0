package events_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/events"
)

func testSigner(t *testing.T) *events.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return events.NewSigner(key)
}

// A commit signature verifies only for the subject and chain hash it was
// made over, only with a trusted key, and never as a snapshot's.
func TestCommitSignature(t *testing.T) {
	sg, other := testSigner(t), testSigner(t)
	keys := events.NewKeyring(sg.Public())
	body := []byte(`{"v":1,"id":"c1","writer":"0","at":"2026-01-01T00:00:00Z","events":[]}`)
	hash := events.ChainHash("", body)
	sig := sg.SignCommit("agentbill.log.0", hash)
	if !strings.HasPrefix(sig, sg.KeyID()+":") || len(sg.KeyID()) != 2*events.KeyIDBytes {
		t.Fatalf("signature %q does not start with the key id %q", sig, sg.KeyID())
	}
	if err := keys.VerifyCommit("agentbill.log.0", hash, sig); err != nil {
		t.Fatalf("genuine signature: %v", err)
	}
	for _, tc := range []struct {
		name, subject, hash, sig string
		want                     error
	}{
		{"no signature", "agentbill.log.0", hash, "", events.ErrUnsigned},
		{"another body", "agentbill.log.0", events.ChainHash("", append(body, ' ')), sig, events.ErrBadSignature},
		{"another link", "agentbill.log.0", events.ChainHash("x", body), sig, events.ErrBadSignature},
		{"another writer's subject", "agentbill.log.1", hash, sig, events.ErrBadSignature},
		{"an untrusted key", "agentbill.log.0", hash, other.SignCommit("agentbill.log.0", hash), events.ErrUnknownKey},
		{"a trusted key id with a forged signature", "agentbill.log.0", hash,
			sg.KeyID() + ":" + strings.Split(other.SignCommit("agentbill.log.0", hash), ":")[1], events.ErrBadSignature},
		{"not base64", "agentbill.log.0", hash, sg.KeyID() + ":!!", events.ErrBadSignature},
		{"no key id", "agentbill.log.0", hash, "abc", events.ErrBadSignature},
		{"a snapshot's signature", "agentbill.log.0", hash, sg.SignSnapshot("0", 1, "c1", []byte(hash)), events.ErrBadSignature},
	} {
		if err := keys.VerifyCommit(tc.subject, tc.hash, tc.sig); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// A snapshot's signature covers its writer, sequence, commit and digest.
func TestSnapshotSignature(t *testing.T) {
	sg := testSigner(t)
	keys := events.NewKeyring(testSigner(t).Public(), sg.Public()) // after a rotation: two keys
	digest := make([]byte, 32)
	sig := sg.SignSnapshot("0", 42, "c42", digest)
	if err := keys.VerifySnapshot("0", 42, "c42", digest, sig); err != nil {
		t.Fatalf("genuine snapshot signature: %v", err)
	}
	changed := append([]byte{1}, digest[1:]...)
	for name, err := range map[string]error{
		"writer": keys.VerifySnapshot("1", 42, "c42", digest, sig),
		"seq":    keys.VerifySnapshot("0", 43, "c42", digest, sig),
		"commit": keys.VerifySnapshot("0", 42, "c43", digest, sig),
		"digest": keys.VerifySnapshot("0", 42, "c42", changed, sig),
	} {
		if !errors.Is(err, events.ErrBadSignature) {
			t.Errorf("another %s: %v, want a bad signature", name, err)
		}
	}
}
