package events

import (
	"encoding/base64"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Bounds on identifiers.
const (
	// CustomerIDBytesMax bounds a customer ID (docs/PROTOCOL.md, "Customer IDs
	// and subject tokens": 1..128 bytes).
	CustomerIDBytesMax = 128
	// tokenPlainBytesMax: IDs up to this length of [A-Za-z0-9_-] appear in
	// subjects as they are.
	tokenPlainBytesMax = 64
	// tokenPrefix marks an encoded token; it is outside the plain alphabet,
	// so plain and encoded tokens can never collide.
	tokenPrefix = '~'
)

// ErrInvalidID is wrapped by every identifier validation error.
var ErrInvalidID = errors.New("invalid identifier")

var tokenEncoding = base64.RawURLEncoding.Strict()

// ValidateID checks an identifier (customer, agent, task, key): 1..maxBytes
// bytes of valid UTF-8 with no control characters.
func ValidateID(what, id string, maxBytes int) error {
	if len(id) == 0 {
		return fmt.Errorf("%w: %s is empty", ErrInvalidID, what)
	}
	if len(id) > maxBytes {
		return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrInvalidID, what, len(id), maxBytes)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidID, what)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s contains control character %U", ErrInvalidID, what, r)
		}
	}
	return nil
}

// ValidateCustomerID checks a customer ID against the rules of
// docs/PROTOCOL.md, "Customer IDs and subject tokens".
func ValidateCustomerID(id string) error {
	return ValidateID("customer_id", id, CustomerIDBytesMax)
}

// Token returns the subject token for a valid customer ID: the ID itself if
// it matches ^[A-Za-z0-9_-]{1,64}$, else '~' and the unpadded base64url of
// its bytes. The result never contains '.', '*', '>' or white space.
func Token(customerID string) string {
	if isPlainToken(customerID) {
		return customerID
	}
	return string(tokenPrefix) + tokenEncoding.EncodeToString([]byte(customerID))
}

// ParseToken is the inverse of Token. It accepts only canonical tokens: an
// ID that has a plain form must use it, so every customer has exactly one
// subject (a scoped NATS permission cannot be bypassed by a second spelling).
func ParseToken(tok string) (string, error) {
	if isPlainToken(tok) {
		return tok, nil
	}
	if len(tok) < 2 || tok[0] != tokenPrefix {
		return "", fmt.Errorf("%w: customer token %q is neither plain nor ~base64url", ErrInvalidID, truncate(tok))
	}
	if len(tok)-1 > tokenEncoding.EncodedLen(CustomerIDBytesMax) {
		return "", fmt.Errorf("%w: customer token is too long", ErrInvalidID)
	}
	// The base64 decoder skips '\r' and '\n' (found by FuzzToken): without
	// this check "~X100\r" would be a second spelling of "~X100".
	for i := 1; i < len(tok); i++ {
		if !isPlainByte(tok[i]) {
			return "", fmt.Errorf("%w: customer token %q is neither plain nor ~base64url", ErrInvalidID, truncate(tok))
		}
	}
	raw, err := tokenEncoding.DecodeString(tok[1:])
	if err != nil {
		return "", fmt.Errorf("%w: customer token %q does not decode", ErrInvalidID, truncate(tok))
	}
	id := string(raw)
	if err := ValidateCustomerID(id); err != nil {
		return "", err
	}
	if isPlainToken(id) {
		return "", fmt.Errorf("%w: customer token %q is not canonical (use %q)", ErrInvalidID, truncate(tok), id)
	}
	return id, nil
}

func isPlainToken(s string) bool {
	if len(s) == 0 || len(s) > tokenPlainBytesMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isPlainByte(s[i]) {
			return false
		}
	}
	return true
}

// isPlainByte reports whether c is in [A-Za-z0-9_-], which is also the
// base64url alphabet.
func isPlainByte(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'
}
