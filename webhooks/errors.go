package webhooks

import "errors"

// Errors. Every error the package returns wraps one of them, or is a
// transport error from NATS or HTTP.
var (
	// ErrInvalid: a bad URL, type, customer or ID was given.
	ErrInvalid = errors.New("invalid webhook parameter")
	// ErrPrivateAddress: the URL resolves to, or the dialled address is,
	// loopback, link-local, private or otherwise not public, and the
	// endpoint was not added with AllowPrivate.
	ErrPrivateAddress = errors.New("webhook address is not public")
	// ErrNotFound: no endpoint has that ID.
	ErrNotFound = errors.New("webhook endpoint not found")
	// ErrLimit: EndpointsMax endpoints exist already.
	ErrLimit = errors.New("too many webhook endpoints")
	// ErrNoAlertStream: the alert stream does not exist yet (serve creates
	// it when its writer first leads).
	ErrNoAlertStream = errors.New("alert stream missing")
	// ErrSignature: a delivery's signature does not verify (Verify).
	ErrSignature = errors.New("webhook signature does not verify")
	// ErrTimestamp: a delivery's timestamp is missing, malformed or outside
	// the tolerance (Verify).
	ErrTimestamp = errors.New("webhook timestamp outside tolerance")
)
