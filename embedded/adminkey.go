package embedded

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
)

// AdminKeyFile is the local admin credential's file name in serve's data
// directory: an nkey user seed, readable by its owner only.
const AdminKeyFile = "admin.nkey"

// AdminKeyMode is the admin key file's mode. A file any other user may
// read, write or run is refused.
const AdminKeyMode fs.FileMode = 0o600

// adminKeyBytesMax bounds what is read of an admin key file: a seed is 58
// characters, a decorated one (nsc's BEGIN/END lines) a few hundred.
const adminKeyBytesMax = 4096

// ErrAdminKey marks an admin key file that cannot be used: wrong mode, not
// a regular file, or not an nkey user seed.
var ErrAdminKey = errors.New("admin credential")

// AdminKeyPath is the admin key file of the data directory dataDir.
func AdminKeyPath(dataDir string) string { return filepath.Join(dataDir, AdminKeyFile) }

// EnsureAdminKey returns the public key of the admin nkey seed at path,
// creating the file first if it does not exist: a fresh user seed, mode
// 0600, written to a temporary file and linked into place, so a reader
// never sees half a seed and two servers starting at once agree on one.
// An existing file is reused; it is refused (ErrAdminKey) if its mode
// lets anyone but its owner in, or if it does not hold a user seed.
func EnsureAdminKey(path string) (string, error) {
	pub, err := ReadAdminKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return pub, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", fmt.Errorf("%w: generate: %v", ErrAdminKey, err)
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return "", fmt.Errorf("%w: generate: %v", ErrAdminKey, err)
	}
	seed = append(seed, '\n')
	defer clear(seed)
	if err := createExclusive(path, seed); err != nil {
		if errors.Is(err, fs.ErrExist) { // written beside us: use that one
			return ReadAdminKey(path)
		}
		return "", fmt.Errorf("%w: write %s: %v", ErrAdminKey, path, err)
	}
	return kp.PublicKey()
}

// ReadAdminKey checks the admin key file at path and returns its public
// key. The error wraps fs.ErrNotExist if there is no file, and ErrAdminKey
// if the file is unusable.
func ReadAdminKey(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	fix := fmt.Sprintf("delete it and restart `agentbill serve` to write a new one, or chmod %o it", AdminKeyMode)
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file (%s); %s", ErrAdminKey, path, fi.Mode().Type(), fix)
	}
	if perm := fi.Mode().Perm(); perm&^AdminKeyMode != 0 {
		return "", fmt.Errorf("%w: %s has mode %#o, want %#o (owner only); %s", ErrAdminKey, path, perm, AdminKeyMode, fix)
	}
	if fi.Size() > adminKeyBytesMax {
		return "", fmt.Errorf("%w: %s holds %d bytes, not an nkey seed; delete it and restart `agentbill serve`", ErrAdminKey, path, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrAdminKey, err)
	}
	defer clear(b)
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return "", fmt.Errorf("%w: %s is not an nkey seed (%v); delete it and restart `agentbill serve`", ErrAdminKey, path, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err == nil && !nkeys.IsValidPublicUserKey(pub) {
		err = errors.New("not a user key")
	}
	if err != nil {
		return "", fmt.Errorf("%w: %s is not an nkey user seed (%v); delete it and restart `agentbill serve`", ErrAdminKey, path, err)
	}
	return pub, nil
}

// createExclusive writes data to path, which must not exist, with mode
// AdminKeyMode: all of it or nothing (fs.ErrExist if path appeared).
func createExclusive(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(AdminKeyMode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// A link, unlike a rename, never replaces a file another process
	// created meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
