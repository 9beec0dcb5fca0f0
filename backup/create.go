package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Bounds of the snapshot and restore protocol.
const (
	// ChunkBytes is the size of one archive chunk, both ways: the
	// server's default for snapshots, and well under the 1 MiB default
	// max_payload that every restore chunk must fit in.
	ChunkBytes = 128 << 10
	// WindowBytes bounds the chunks the server sends before their acks
	// (the server's default; 64 chunks). The subscription's pending
	// limit (64 MiB by default) holds a whole window.
	WindowBytes = 8 << 20
	// APITimeout bounds one JetStream API request that answers at once.
	APITimeout = 10 * time.Second
	// SnapshotStartTimeout bounds the snapshot request: the server checks
	// every message's checksum (jsck) before it answers, which reads the
	// whole stream from disk.
	SnapshotStartTimeout = 10 * time.Minute
	// ChunkTimeout bounds the wait for the next chunk (backup) or for a
	// chunk's ack (restore). The server itself gives up on a receiver
	// that has not acked for 5 s, and on a restore idle for 5 s.
	ChunkTimeout = 30 * time.Second
	// RestoreFinishTimeout bounds the wait, after the last chunk, for the
	// server to finish loading the stream and answer.
	RestoreFinishTimeout = 10 * time.Minute
)

// Options configures Create.
type Options struct {
	// Conn is a connection to the ledger's NATS.
	Conn *nats.Conn
	// Out is the backup directory. It must not exist or be empty, or,
	// with Force, hold a finished backup, which is replaced.
	Out   string
	Force bool
	// PublicKeys is a file of public keys copied into the backup as
	// PublicKeysName; "" for none.
	PublicKeys string
	// Progress, if not nil, is called as a stream's archive grows.
	Progress func(stream string, bytes int64)
	// Now is the clock for the manifest's created_at; time.Now if nil.
	Now func() time.Time
}

// Create backs up every stream of Streams that exists into o.Out and
// returns the manifest written there. The directory appears whole or not
// at all: it is written beside o.Out and renamed into place.
func Create(ctx context.Context, o Options) (*Manifest, error) {
	if err := checkOut(o.Out, o.Force); err != nil {
		return nil, err
	}
	var pub []byte
	if o.PublicKeys != "" {
		var err error
		if pub, err = readSmall(o.PublicKeys, PublicKeysBytesMax); err != nil {
			return nil, fmt.Errorf("public keys: %w", err)
		}
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	m := &Manifest{Format: FormatVersion, CreatedAt: now().UTC(), ServerVersion: o.Conn.ConnectedServerVersion()}
	dir, err := stage(o.Out)
	if err != nil {
		return nil, fmt.Errorf("backup directory: %w", err)
	}
	if err := fill(ctx, o, dir, m, pub); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := publish(dir, o.Out); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("move the backup into %s: %w", o.Out, err)
	}
	return m, nil
}

// fill writes the archives, the public keys and, last, the manifest.
func fill(ctx context.Context, o Options, dir string, m *Manifest, pub []byte) error {
	for _, s := range Streams {
		e, err := snapshotStream(ctx, o.Conn, dir, s.Name, o.Progress)
		if errors.Is(err, errNoStream) && !s.Required {
			continue
		}
		if err != nil {
			return err
		}
		m.Streams = append(m.Streams, *e)
	}
	if pub != nil {
		f, err := writeFile(dir, PublicKeysName, writeBytes(pub))
		if err != nil {
			return err
		}
		m.PublicKeys = &f
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	_, err = writeFile(dir, ManifestName, writeBytes(append(b, '\n')))
	return err
}

// errNoStream: the stream to back up does not exist.
var errNoStream = errors.New("stream not found")

// snapshotStream asks the server for a snapshot of the stream and writes
// the chunks it streams to dir/<name>.snapshot.
func snapshotStream(ctx context.Context, nc *nats.Conn, dir, name string, progress func(string, int64)) (*StreamEntry, error) {
	// Subscribe before asking: the server sends the first chunks as soon
	// as it has answered.
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	req := server.JSApiStreamSnapshotRequest{DeliverSubject: inbox, NoConsumers: true,
		ChunkSize: ChunkBytes, WindowSize: WindowBytes, CheckMsgs: true}
	var resp server.JSApiStreamSnapshotResponse
	if err := apiRequest(ctx, nc, fmt.Sprintf(server.JSApiStreamSnapshotT, name), req, &resp, SnapshotStartTimeout); err != nil {
		return nil, err
	}
	if resp.Error != nil {
		if server.IsNatsErr(resp.Error, server.JSStreamNotFoundErr) {
			return nil, fmt.Errorf("%w: %s: is this the ledger's NATS server (and account)?", errNoStream, name)
		}
		return nil, fmt.Errorf("snapshot of %s: %v", name, resp.Error)
	}
	if resp.Config == nil || resp.State == nil {
		return nil, fmt.Errorf("snapshot of %s: the server sent no config or state", name)
	}
	f, err := writeFile(dir, name+archiveSuffix, func(w io.Writer) error {
		return receive(ctx, sub, w, func(n int64) {
			if progress != nil {
				progress(name, n)
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", name, err)
	}
	return &StreamEntry{Name: name, Config: *resp.Config, State: *resp.State, Archive: f}, nil
}

// receive writes the chunks arriving on sub to w, acking each one after
// it is written (the server's flow control), until the empty message
// that ends the snapshot. That message carries no status, or 204, when
// the snapshot is complete, and an error status otherwise.
func receive(ctx context.Context, sub *nats.Subscription, w io.Writer, progress func(int64)) error {
	var n int64
	for {
		cctx, cancel := context.WithTimeout(ctx, ChunkTimeout)
		msg, err := sub.NextMsgWithContext(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("waiting for the next chunk (%d bytes so far): %w", n, err)
		}
		if len(msg.Data) == 0 {
			if st := msg.Header.Get("Status"); st != "" && st != "204" {
				return fmt.Errorf("the server ended the snapshot after %d bytes with status %s %s", n, st, msg.Header.Get("Description"))
			}
			return nil
		}
		if _, err := w.Write(msg.Data); err != nil {
			return err
		}
		n += int64(len(msg.Data))
		progress(n)
		if msg.Reply != "" {
			if err := msg.Respond(nil); err != nil {
				return fmt.Errorf("ack chunk: %w", err)
			}
		}
	}
}

// apiRequest sends a JetStream API request and decodes the response.
func apiRequest(ctx context.Context, nc *nats.Conn, subject string, req, resp any, timeout time.Duration) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, subject, b)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%s: no JetStream answered: is JetStream on, and may these credentials publish there? (%w)", subject, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("%s: bad response: %w", subject, err)
	}
	return nil
}
