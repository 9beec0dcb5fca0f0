// Package kvbucket opens the JetStream key-value buckets that clients of
// the service create on first use (the API keys, the webhook endpoints).
package kvbucket

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Open returns the bucket cfg.Bucket, creating it with cfg if it does not
// exist. A bucket created by another process at the same moment is
// opened; an existing bucket is never changed (users allowed to create it
// need no right to update it).
func Open(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) { // created beside us
		return js.KeyValue(ctx, cfg.Bucket)
	}
	return kv, err
}
