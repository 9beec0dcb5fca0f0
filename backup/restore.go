package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// Conn is a connection to the server to restore onto.
	Conn *nats.Conn
	// From is the backup directory.
	From string
	// Replicas, if not 0, replaces the backed-up streams' replica count
	// (a backup of a 3-node cluster restored onto one server takes 1).
	Replicas int
	// Progress, if not nil, is called as a stream's archive is sent.
	Progress func(stream string, sent, total int64)
}

// Restore restores every stream of the backup in o.From onto the server.
// Before it sends anything it checks every archive's size and SHA-256
// against the manifest and that none of the streams exists on the server:
// it never overwrites a log. After each stream it checks that the
// restored stream's messages and first and last sequences are the
// manifest's. It returns the manifest.
func Restore(ctx context.Context, o RestoreOptions) (*Manifest, error) {
	m, err := ReadManifest(o.From)
	if err != nil {
		return nil, err
	}
	for _, s := range m.Streams {
		if err := checkFile(o.From, s.Archive); err != nil {
			return nil, err
		}
	}
	if err := checkAbsent(ctx, o.Conn, m); err != nil {
		return nil, err
	}
	for i, s := range m.Streams {
		if err := restoreStream(ctx, o, s); err != nil {
			var done []string
			for _, d := range m.Streams[:i] {
				done = append(done, d.Name)
			}
			if errors.Is(err, ErrStateMismatch) { // created, but not as backed up
				done = append(done, s.Name)
			}
			if len(done) > 0 {
				err = fmt.Errorf("%w (already restored: %v; delete them, e.g. `nats stream rm`, before trying again)", err, done)
			}
			return nil, err
		}
	}
	return m, nil
}

// checkAbsent refuses when any of the backup's streams exists on the
// server, before anything is restored.
func checkAbsent(ctx context.Context, nc *nats.Conn, m *Manifest) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	for _, s := range m.Streams {
		cctx, cancel := context.WithTimeout(ctx, APITimeout)
		_, err := js.Stream(cctx, s.Name)
		cancel()
		switch {
		case err == nil:
			return fmt.Errorf("%w: %s is on the target server: restore onto a fresh server or data directory (a restore never overwrites a log)", ErrStreamExists, s.Name)
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return fmt.Errorf("look for stream %s on the target: %w", s.Name, err)
		}
	}
	return nil
}

// restoreStream creates the stream from its archive: a restore request
// with the backed-up config and state, every chunk sent to the subject
// the server names and acknowledged, then an empty message, answered when
// the stream is loaded.
func restoreStream(ctx context.Context, o RestoreOptions, s StreamEntry) error {
	cfg := s.Config
	if o.Replicas > 0 {
		cfg.Replicas = o.Replicas
	}
	var resp server.JSApiStreamRestoreResponse
	req := server.JSApiStreamRestoreRequest{Config: cfg, State: s.State}
	if err := apiRequest(ctx, o.Conn, fmt.Sprintf(server.JSApiStreamRestoreT, s.Name), req, &resp, APITimeout); err != nil {
		return err
	}
	if resp.Error != nil {
		if server.IsNatsErr(resp.Error, server.JSStreamNameExistRestoreFailedErr) {
			return fmt.Errorf("%w: %s: %v", ErrStreamExists, s.Name, resp.Error)
		}
		return fmt.Errorf("restore %s: %v", s.Name, resp.Error)
	}
	if err := sendArchive(ctx, o, s, resp.DeliverSubject); err != nil {
		// The server drops a restore that stays idle (5 s) without its
		// final message: nothing half-restored remains.
		return fmt.Errorf("restore %s: %w", s.Name, err)
	}
	var done server.JSApiStreamCreateResponse
	if err := chunkRequest(ctx, o.Conn, resp.DeliverSubject, nil, &done, RestoreFinishTimeout); err != nil {
		return fmt.Errorf("restore %s: finish: %w", s.Name, err)
	}
	if done.Error != nil {
		return fmt.Errorf("restore %s: %v", s.Name, done.Error)
	}
	if done.StreamInfo == nil {
		return fmt.Errorf("restore %s: the server sent no stream info", s.Name)
	}
	got, want := done.StreamInfo.State, s.State
	if got.Msgs != want.Msgs || got.FirstSeq != want.FirstSeq || got.LastSeq != want.LastSeq {
		return fmt.Errorf("%w: %s has %d messages, sequences %d to %d; the backup %d, %d to %d",
			ErrStateMismatch, s.Name, got.Msgs, got.FirstSeq, got.LastSeq, want.Msgs, want.FirstSeq, want.LastSeq)
	}
	return nil
}

// sendArchive sends the archive in chunks, each acked before the next,
// and checks on the way that the file is still the one the manifest
// describes (it was checked before, but it is read again here).
func sendArchive(ctx context.Context, o RestoreOptions, s StreamEntry, subject string) error {
	f, err := os.Open(filepath.Join(o.From, s.Archive.Name))
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, ChunkBytes)
	var sent int64
	for {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			h.Write(buf[:n])
			var ack server.JSApiStreamCreateResponse
			if err := chunkRequest(ctx, o.Conn, subject, buf[:n], &ack, ChunkTimeout); err != nil {
				return fmt.Errorf("chunk at byte %d: %w", sent, err)
			}
			if ack.Error != nil {
				return fmt.Errorf("chunk at byte %d: %v", sent, ack.Error)
			}
			sent += int64(n)
			if o.Progress != nil {
				o.Progress(s.Name, sent, s.Archive.Bytes)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sent != s.Archive.Bytes || sum != s.Archive.SHA256 {
		return fmt.Errorf("%w: %s changed while it was sent", ErrChecksum, s.Archive.Name)
	}
	return nil
}

// chunkRequest sends data to the restore subject and decodes the answer
// into resp: an empty answer acks a chunk; a JSON one is an error or, to
// the final empty message, the result.
func chunkRequest(ctx context.Context, nc *nats.Conn, subject string, data []byte, resp any, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return err
	}
	if len(msg.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("bad response: %w", err)
	}
	return nil
}
