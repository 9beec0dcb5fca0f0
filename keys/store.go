package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/agentbill/agentbill/internal/kvbucket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Store bounds and names.
const (
	// Bucket is the JetStream key-value bucket holding the keys (its
	// stream is KV_AGENTBILL_KEYS).
	Bucket = "AGENTBILL_KEYS"
	// BucketHistory keeps each key's previous record too, so a revocation
	// leaves the record it replaced for an operator to read.
	BucketHistory = 2
	// RecordBytesMax bounds one stored record.
	RecordBytesMax = 4 * 1024
	// KeysMax bounds how many keys List reads.
	KeysMax = 10_000
	// CallTimeout bounds one store operation when the caller's context
	// has no deadline.
	CallTimeout = 5 * time.Second
	// createAttempts bounds retries of Create on an ID collision (64-bit
	// IDs: a collision is astronomically unlikely, but never overwrites).
	createAttempts = 3
	// revokeAttempts bounds compare-and-set retries of Revoke.
	revokeAttempts = 5
)

// Options configures Open.
type Options struct {
	// Replicas of the bucket if Open creates it: 1, or 3 on a cluster.
	Replicas int
	// Now is the clock for created and revoked times; time.Now if nil.
	Now func() time.Time
}

// Store keeps API keys, by ID, in the AGENTBILL_KEYS bucket. Only each
// key's SHA-256 is stored. It is safe for concurrent use.
type Store struct {
	nc  *nats.Conn
	kv  jetstream.KeyValue
	now func() time.Time
}

// Open opens the bucket, creating it if it does not exist.
func Open(ctx context.Context, nc *nats.Conn, o Options) (*Store, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := kvbucket.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket:       Bucket,
		Description:  "AgentBill API keys: SHA-256 hashes, roles, revocations",
		History:      BucketHistory,
		MaxValueSize: RecordBytesMax,
		Storage:      jetstream.FileStorage,
		Replicas:     max(1, o.Replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("keys: bucket %s: %w", Bucket, err)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Store{nc: nc, kv: kv, now: now}, nil
}

// Create makes a new key with a role, optionally bound to one customer,
// and returns the key (the only time it is ever seen) and its record.
// Errors: ErrInvalid for a bad role, customer or name; NATS errors.
func (s *Store) Create(ctx context.Context, role Role, customerID, name string) (string, *Key, error) {
	if err := checkCreate(role, customerID, name); err != nil {
		return "", nil, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	for range createAttempts {
		secret, err := newSecret()
		if err != nil {
			return "", nil, err
		}
		hash, id := hashSecret(secret)
		k := &Key{
			ID: id, Hash: hash, Prefix: secret[:DisplayPrefixLen], Role: role,
			CustomerID: customerID, Name: name, CreatedAt: s.now().UTC(),
		}
		b, err := json.Marshal(k)
		if err != nil {
			return "", nil, err
		}
		if _, err = s.kv.Create(ctx, id, b); errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("keys: create: %w", err)
		}
		return secret, k, nil
	}
	return "", nil, fmt.Errorf("keys: create: %d ID collisions in a row", createAttempts)
}

// List returns every key's record (never a secret), oldest first, at most
// KeysMax of them.
func (s *Store) List(ctx context.Context) ([]*Key, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: list: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var out []*Key
	for id := range lister.Keys() {
		if len(out) == KeysMax {
			break
		}
		e, err := s.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("keys: list: %w", err)
		}
		k, err := decodeKey(e.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: list: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Revoke marks a key revoked; every request with it fails from then on.
// Revoking a revoked key changes nothing. Errors: ErrInvalid for a
// malformed ID, ErrNotFound, NATS errors.
func (s *Store) Revoke(ctx context.Context, id string) (*Key, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	for range revokeAttempts {
		e, err := s.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return nil, fmt.Errorf("keys: revoke: %w", err)
		}
		k, err := decodeKey(e.Value())
		if err != nil {
			return nil, err
		}
		if k.Revoked {
			return k, nil
		}
		at := s.now().UTC()
		k.Revoked, k.RevokedAt = true, &at
		b, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		if _, err := s.kv.Update(ctx, id, b, e.Revision()); err == nil {
			return k, nil
		} else if !isWrongRevision(err) {
			return nil, fmt.Errorf("keys: revoke: %w", err)
		}
	}
	return nil, fmt.Errorf("keys: revoke %s: changed concurrently %d times", id, revokeAttempts)
}

func isWrongRevision(err error) bool {
	var jsErr jetstream.JetStreamError
	return errors.As(err, &jsErr) && jsErr.APIError() != nil &&
		jsErr.APIError().ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Authenticate returns the record of a valid, unrevoked key. It reads the
// record from the bucket's stream leader on every call (not a direct get,
// which a replica may answer from behind the leader), so a revocation
// acknowledged by the leader is seen by the very next request. Errors:
// ErrUnauthenticated (malformed, unknown or revoked), NATS errors (the
// caller must then refuse: deny by default).
func (s *Store) Authenticate(ctx context.Context, secret string) (*Key, error) {
	if err := checkSecretShape(secret); err != nil {
		return nil, err
	}
	hash, id := hashSecret(secret)
	ctx, cancel := bound(ctx)
	defer cancel()
	data, err := s.leaderGet(ctx, id)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, fmt.Errorf("%w: unknown key", ErrUnauthenticated)
	}
	k, err := decodeKey(data)
	if err != nil {
		return nil, err
	}
	if !k.matches(hash) {
		return nil, fmt.Errorf("%w: unknown key", ErrUnauthenticated)
	}
	if k.Revoked {
		return nil, fmt.Errorf("%w: key %s was revoked", ErrUnauthenticated, k.ID)
	}
	return k, nil
}

// jsErrNoMessage is JetStream's "no message found" error code.
const jsErrNoMessage = 10037

// leaderGet reads the latest record of one key through the stream's
// leader ($JS.API.STREAM.MSG.GET), or nil if there is none or it was
// deleted.
func (s *Store) leaderGet(ctx context.Context, id string) ([]byte, error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + Bucket + "." + id})
	msg, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+Bucket, req)
	if err != nil {
		return nil, fmt.Errorf("%w: lookup: %v", ErrUnavailable, err)
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Header []byte `json:"hdrs"`
			Data   []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("keys: lookup: malformed reply: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrCode == jsErrNoMessage {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: lookup: %s (%d)", ErrUnavailable, resp.Error.Description, resp.Error.ErrCode)
	}
	if resp.Message == nil {
		return nil, errors.New("keys: lookup: empty reply")
	}
	if len(resp.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Header)
		if err == nil && h.Get("KV-Operation") != "" {
			return nil, nil // a delete or purge marker
		}
	}
	return resp.Message.Data, nil
}

func decodeKey(b []byte) (*Key, error) {
	var k Key
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("keys: corrupt record: %w", err)
	}
	if _, err := ParseRole(string(k.Role)); err != nil || len(k.Hash) != 64 {
		return nil, fmt.Errorf("keys: corrupt record for %q", truncate(k.ID))
	}
	return &k, nil
}

// bound gives ctx a deadline of CallTimeout unless it has one.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, CallTimeout)
}
