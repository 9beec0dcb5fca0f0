// Package backup copies AgentBill's JetStream streams (the ledger log, the
// snapshot store and the API keys) to a directory and restores them on
// another server, byte for byte, through JetStream's own stream snapshot
// and restore API. See README.md for what it guarantees.
package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats-server/v2/server"
)

// Names in a backup directory, and the manifest's bounds.
const (
	// ManifestName is the manifest's file name. It is written last: a
	// directory holding it is a finished backup.
	ManifestName = "manifest.json"
	// FormatVersion is the manifest format this package writes and reads.
	FormatVersion = 1
	// PublicKeysName is the name of the copied public-key file.
	PublicKeysName = "signing.pub"
	// archiveSuffix ends each stream archive's name (the server's
	// snapshot bytes, kept opaque: s2-compressed, in its own format).
	archiveSuffix = ".snapshot"
	// ManifestBytesMax bounds the manifest read back (it holds a few
	// stream configurations and states: a few KiB).
	ManifestBytesMax = 1 << 20
	// PublicKeysBytesMax bounds the public-key file copied (Ed25519 keys
	// are 32 bytes each; 1 MiB is thousands of them, text-encoded).
	PublicKeysBytesMax = 1 << 20
)

// Stream is one stream a backup takes.
type Stream struct {
	Name string
	// Required streams must exist for a backup to be taken.
	Required bool
}

// Streams are the streams backed up, in the order they are snapshotted
// and restored. The log comes last on purpose: every state snapshot in the
// backup then covers a sequence the backed-up log holds, so the restored
// writer can start from it. The lease bucket (projections.LeaseBucket) is
// not here: leases say who is alive now, which a restore must not bring
// back.
var Streams = []Stream{
	{Name: "OBJ_" + projections.SnapshotBucket},
	{Name: "KV_" + keys.Bucket},
	{Name: events.StreamName, Required: true},
}

// Manifest describes a finished backup.
type Manifest struct {
	// Format is FormatVersion.
	Format int `json:"format"`
	// CreatedAt is when the backup started (UTC).
	CreatedAt time.Time `json:"created_at"`
	// ServerVersion is the nats-server the archives come from: a server
	// restores archives of its own version or older.
	ServerVersion string `json:"server_version"`
	// Streams are the streams backed up, in restore order.
	Streams []StreamEntry `json:"streams"`
	// PublicKeys is the copied file of Ed25519 public keys that auditors
	// check commit signatures with; nil if none was copied.
	PublicKeys *File `json:"public_keys,omitempty"`
}

// StreamEntry is one stream in a backup: the configuration and state the
// server reported when it took the snapshot, and the archive.
type StreamEntry struct {
	Name    string              `json:"name"`
	Config  server.StreamConfig `json:"config"`
	State   server.StreamState  `json:"state"`
	Archive File                `json:"archive"`
}

// File is a file in the backup directory.
type File struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Errors Restore and ReadManifest return, wrapped with the details.
var (
	// ErrNoManifest: the directory is not a finished backup.
	ErrNoManifest = errors.New("no backup manifest")
	// ErrBadManifest: the manifest cannot be used.
	ErrBadManifest = errors.New("backup manifest unusable")
	// ErrChecksum: a file's SHA-256 or size differs from the manifest's.
	ErrChecksum = errors.New("backup file corrupt")
	// ErrStreamExists: the target already has a stream of the backup.
	ErrStreamExists = errors.New("stream already exists")
	// ErrStateMismatch: a restored stream's state differs from the
	// manifest's.
	ErrStateMismatch = errors.New("restored stream differs from the backup")
)

// ReadManifest reads and checks dir's manifest.
func ReadManifest(dir string) (*Manifest, error) {
	f, err := os.Open(filepath.Join(dir, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: give the directory `agentbill backup --out` wrote (an unfinished backup has none)", ErrNoManifest, dir)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, ManifestBytesMax+1))
	if err != nil {
		return nil, err
	}
	if len(b) > ManifestBytesMax {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrBadManifest, ManifestName, ManifestBytesMax)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadManifest, ManifestName, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	return &m, nil
}

// Validate reports every problem at once: the format, the streams (known,
// once each, the required ones present) and file names that stay inside
// the backup directory.
func (m *Manifest) Validate() error {
	var errs []error
	if m.Format != FormatVersion {
		errs = append(errs, fmt.Errorf("format %d: this agentbill reads format %d", m.Format, FormatVersion))
	}
	seen := map[string]bool{}
	for _, s := range m.Streams {
		if !knownStream(s.Name) {
			errs = append(errs, fmt.Errorf("stream %q is not one agentbill backs up", s.Name))
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("stream %q listed twice", s.Name))
		}
		seen[s.Name] = true
		if s.Config.Name != s.Name {
			errs = append(errs, fmt.Errorf("stream %q: its config names %q", s.Name, s.Config.Name))
		}
		errs = append(errs, s.Archive.validate())
	}
	for _, s := range Streams {
		if s.Required && !seen[s.Name] {
			errs = append(errs, fmt.Errorf("stream %s is missing", s.Name))
		}
	}
	if m.PublicKeys != nil {
		errs = append(errs, m.PublicKeys.validate())
	}
	return errors.Join(errs...)
}

func (f File) validate() error {
	if f.Name == "" || f.Name != filepath.Base(f.Name) || strings.HasPrefix(f.Name, ".") || f.Name == ManifestName {
		return fmt.Errorf("file name %q: want a plain file name inside the backup", f.Name)
	}
	if f.Bytes < 0 || len(f.SHA256) != 64 {
		return fmt.Errorf("file %s: bad size or SHA-256", f.Name)
	}
	return nil
}

func knownStream(name string) bool {
	for _, s := range Streams {
		if s.Name == name {
			return true
		}
	}
	return false
}
