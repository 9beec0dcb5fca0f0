package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks format (standardwebhooks.com): three headers, and
// an HMAC-SHA256 over "{id}.{timestamp}.{body}" keyed with the secret's
// bytes (the base64 after SecretPrefix).
const (
	// SecretPrefix starts every signing secret.
	SecretPrefix = "whsec_"
	// HeaderID carries the event's ID: the same for every retry, so a
	// receiver deduplicates on it.
	HeaderID = "webhook-id"
	// HeaderTimestamp carries the attempt's time, in Unix seconds.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature carries "v1,<base64 signature>" (a receiver accepts
	// any of several, space-separated, during a secret rotation).
	HeaderSignature = "webhook-signature"
	// SignatureVersion is the scheme this package signs with.
	SignatureVersion = "v1"
	// TimestampTolerance is how far a delivery's timestamp may be from the
	// receiver's clock before Verify refuses it (replays).
	TimestampTolerance = 5 * time.Minute
)

// DecodeSecret returns the key bytes of a whsec_ secret.
func DecodeSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: secret must start with %s", ErrInvalid, SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("%w: secret is not %s and base64", ErrInvalid, SecretPrefix)
	}
	return key, nil
}

// Sign returns the webhook-signature value for one attempt.
func Sign(key []byte, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return SignatureVersion + "," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks a delivery as a receiver does: the timestamp within
// TimestampTolerance of now, and one v1 signature that matches. It
// returns an error wrapping ErrTimestamp or ErrSignature.
func Verify(body []byte, h http.Header, secret string, now time.Time) error {
	key, err := DecodeSecret(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || sigs == "" {
		return fmt.Errorf("%w: missing %s or %s", ErrSignature, HeaderID, HeaderSignature)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrTimestamp, HeaderTimestamp, truncate(tsText))
	}
	if d := now.Sub(time.Unix(ts, 0)); d > TimestampTolerance || d < -TimestampTolerance {
		return fmt.Errorf("%w: %s is %s from now (tolerance %s)", ErrTimestamp, HeaderTimestamp, d.Round(time.Second), TimestampTolerance)
	}
	want := []byte(Sign(key, id, ts, body))
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no %s signature matches", ErrSignature, SignatureVersion)
}
