package events

import (
	"crypto/sha256"
	"encoding/hex"
)

// Tamper evidence. Every commit carries, in the header ChainHeader, the
// chain hash of the commit its writer appended before it ("" for a writer's
// first commit). The chain hash of commit n is
//
//	h(n) = hex(SHA-256(h(n-1) || body(n)))
//
// over the commit's stored bytes, so changing, removing or inserting any
// commit breaks every later link of that writer's chain. Each writer (each
// agentbill.log.<writer> subject) keeps its own chain.
const ChainHeader = "Agentbill-Chain-Prev"

// ChainHash returns h(n) from h(n-1) and commit n's body.
func ChainHash(prev string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}
