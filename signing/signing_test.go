package signing_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/signing"
)

// Writers started together on one key path all sign with the one key
// that won, and the file is owner-only.
func TestLoadOrCreateIsAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", signing.KeyFile)
	const starters = 8
	keys := make([]ed25519.PrivateKey, starters)
	created := make([]bool, starters)
	var wg sync.WaitGroup
	for i := range starters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, c, err := signing.LoadOrCreate(path)
			if err != nil {
				t.Error(err)
			}
			keys[i], created[i] = k, c
		}()
	}
	wg.Wait()
	n := 0
	for i := range starters {
		if created[i] {
			n++
		}
		if !keys[i].Equal(keys[0]) {
			t.Fatalf("starter %d got another key", i)
		}
	}
	if n != 1 {
		t.Errorf("%d starters created the key, want 1", n)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != signing.KeyFileMode {
		t.Errorf("key file mode %v, %v; want %v", fi.Mode().Perm(), err, os.FileMode(signing.KeyFileMode))
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files beside the key, want none (temporary files removed)", len(entries)-1)
	}
}

func TestLoadRefusesBadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if _, _, err := signing.LoadOrCreate(good); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	for name, c := range map[string]struct {
		body []byte
		mode os.FileMode
		want string
	}{
		"readable by others": {b, 0o644, "chmod 600"},
		"not PEM":            {[]byte("hello"), 0o600, "PEM"},
		"two keys":           {append(append([]byte{}, b...), b...), 0o600, "PEM"},
		"a public key":       {[]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600, "PEM"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, c.body, c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, c.mode); err != nil {
			t.Fatal(err)
		}
		if _, err := signing.Load(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
}

// Open publishes every trusted key; Rotate makes a new key and keeps the
// old one trusted, so commits it signed still verify.
func TestOpenAndRotate(t *testing.T) {
	dir := t.TempDir()
	key, trusted, public := filepath.Join(dir, signing.KeyFile), filepath.Join(dir, signing.TrustedFile), filepath.Join(dir, signing.PublicFile)
	k1, created, err := signing.Open(key, trusted, public)
	if err != nil || !created {
		t.Fatalf("first open: created %v, %v", created, err)
	}
	hash := events.ChainHash("", []byte("body"))
	old := k1.Signer.SignCommit("agentbill.log.0", hash)

	oldID, newID, err := signing.Rotate(key, trusted)
	if err != nil || oldID != k1.Signer.KeyID() || newID == oldID {
		t.Fatalf("rotate: %s -> %s, %v", oldID, newID, err)
	}
	k2, created, err := signing.Open(key, trusted, public)
	if err != nil || created || k2.Signer.KeyID() != newID {
		t.Fatalf("open after rotate: key %s created %v, %v; want %s", k2.Signer.KeyID(), created, err, newID)
	}
	if err := k2.Keyring.VerifyCommit("agentbill.log.0", hash, old); err != nil {
		t.Errorf("a commit signed before the rotation: %v", err)
	}
	pubs, err := signing.ReadPublicKeys(public)
	if err != nil || len(pubs) != 2 || events.KeyID(pubs[0]) != newID || events.KeyID(pubs[1]) != oldID {
		t.Errorf("published keys %d, %v; want the new one, then the old", len(pubs), err)
	}
}

func TestReadPublicKeysRefusesJunk(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keys.pub")
	if keys, err := signing.ReadPublicKeys(p); err != nil || len(keys) != 0 {
		t.Fatalf("a missing file: %d keys, %v; want none", len(keys), err)
	}
	if err := os.WriteFile(p, []byte("ssh-ed25519 AAAA me@host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := signing.ReadPublicKeys(p); err == nil {
		t.Error("a file that is not PEM was read")
	}
}
