package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File modes: a backup holds API key hashes and the whole ledger, so only
// its owner reads it.
const (
	dirMode  = 0o700
	fileMode = 0o600
	// partSuffix marks a file still being written.
	partSuffix = ".part"
)

// ErrOutNotEmpty: the output directory holds something other than a
// finished backup, or a finished backup and --force was not given.
var ErrOutNotEmpty = errors.New("output directory not empty")

// checkOut says whether a backup may be written to out: it must not exist,
// be empty, or (with force) hold a finished backup, which is replaced.
func checkOut(out string, force bool) error {
	entries, err := os.ReadDir(out)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(out, ManifestName)); err != nil {
		return fmt.Errorf("%w: %s holds files but no %s, so it is not a backup: choose an empty or new directory", ErrOutNotEmpty, out, ManifestName)
	}
	if !force {
		return fmt.Errorf("%w: %s holds a finished backup: give --force to replace it, or choose a new directory", ErrOutNotEmpty, out)
	}
	return nil
}

// stage creates the directory a backup is written into, beside out, so
// that publish can rename it into place: a reader sees the old backup or
// the whole new one, never half of one.
func stage(out string) (string, error) {
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, dirMode); err != nil {
		return "", err
	}
	return os.MkdirTemp(parent, "."+filepath.Base(out)+".partial-")
}

// publish moves the finished staging directory to out, replacing an empty
// directory or a finished backup (checkOut ran before).
func publish(staging, out string) error {
	out = filepath.Clean(out)
	parent := filepath.Dir(out)
	var old string
	if entries, err := os.ReadDir(out); err == nil {
		if len(entries) == 0 {
			if err := os.Remove(out); err != nil {
				return err
			}
		} else {
			old = staging + ".old"
			if err := os.Rename(out, old); err != nil {
				return err
			}
		}
	}
	if err := os.Rename(staging, out); err != nil {
		return err
	}
	if err := syncDir(parent); err != nil {
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// writeFile writes dir/name atomically with write: into name.part, fsynced,
// then renamed, and the directory fsynced. It returns the file's size and
// SHA-256.
func writeFile(dir, name string, write func(io.Writer) error) (File, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path+partSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return File{}, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = write(cw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(path+partSuffix, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(path + partSuffix)
		return File{}, fmt.Errorf("write %s: %w", path, err)
	}
	return File{Name: name, Bytes: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeBytes is a writeFile body that writes b.
func writeBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// syncDir fsyncs a directory so a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkFile verifies dir/f's size and SHA-256 against the manifest's.
func checkFile(dir string, f File) error {
	path := filepath.Join(dir, f.Name)
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrChecksum, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != f.Bytes || sum != f.SHA256 {
		return fmt.Errorf("%w: %s is %d bytes with SHA-256 %s; the manifest says %d bytes, %s: take the backup again, or use an intact copy",
			ErrChecksum, path, n, sum, f.Bytes, f.SHA256)
	}
	return nil
}

// readSmall reads a file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return b, nil
}

// ErrPublicKeysDiffer: the target already trusts other public keys.
var ErrPublicKeysDiffer = errors.New("a different trusted public-key file exists")

// CheckPublicKeys says whether InstallPublicKeys would succeed: the
// backup's public-key file (if it has one) is intact, and path does not
// hold different keys. It writes nothing.
func CheckPublicKeys(dir string, m *Manifest, path string) error {
	_, _, err := publicKeys(dir, m, path)
	return err
}

// InstallPublicKeys copies the backup's public-key file (if it has one) to
// path, atomically. An existing file with the same bytes is left as it
// is; a different one is never overwritten. It reports whether the backup
// had a public-key file.
func InstallPublicKeys(dir string, m *Manifest, path string) (bool, error) {
	want, present, err := publicKeys(dir, m, path)
	if want == nil || present || err != nil {
		return m.PublicKeys != nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return true, err
	}
	_, err = writeFile(filepath.Dir(path), filepath.Base(path), writeBytes(want))
	return true, err
}

// publicKeys returns the backup's public keys (nil if it has none) and
// whether path already holds exactly them.
func publicKeys(dir string, m *Manifest, path string) (want []byte, present bool, err error) {
	if m.PublicKeys == nil {
		return nil, false, nil
	}
	if err := checkFile(dir, *m.PublicKeys); err != nil {
		return nil, false, err
	}
	if want, err = readSmall(filepath.Join(dir, m.PublicKeys.Name), PublicKeysBytesMax); err != nil {
		return nil, false, err
	}
	have, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(have, want):
		return want, true, nil
	case err == nil:
		return nil, false, fmt.Errorf("%w: %s differs from the backup's %s: compare them, and move %s away if the backup's keys are the ones to trust",
			ErrPublicKeysDiffer, path, m.PublicKeys.Name, path)
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, err
	}
	return want, false, nil
}
