package events

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Log layout. Each group commit of the writer is one stream message: a
// Commit holding the events it decided, in order. One message is one fsync
// and is stored whole or not at all (see docs/architecture.md: "Why one
// message per commit").
const (
	// LogSubjectPrefix prefixes commit subjects: agentbill.log.<writer>.
	LogSubjectPrefix = "agentbill.log."
	// LogSubjects is the AGENTBILL stream's subject filter.
	LogSubjects = "agentbill.log.>"
	// WriterDefault names the writer of an unpartitioned ledger.
	WriterDefault = "0"
)

// LogSubject returns the subject a writer appends its commits to.
func LogSubject(writer string) string { return LogSubjectPrefix + writer }

// Commit is one stream message: every event of one group commit.
type Commit struct {
	V      int         `json:"v"`
	ID     string      `json:"id"`     // UUID v7; also the Nats-Msg-Id header
	Writer string      `json:"writer"` // the writer (partition) that appended it
	At     time.Time   `json:"at"`
	Events []*Envelope `json:"events"`
}

// CommitEncoder builds a commit body incrementally from events already
// encoded with Encode, so the writer encodes each event once.
type CommitEncoder struct {
	buf bytes.Buffer
	n   int
}

// Reset starts a new commit.
func (c *CommitEncoder) Reset(id, writer string, at time.Time) {
	c.buf.Reset()
	c.n = 0
	c.buf.WriteString(`{"v":`)
	c.buf.WriteString(strconv.Itoa(Version))
	c.buf.WriteString(`,"id":`)
	writeJSONString(&c.buf, id)
	c.buf.WriteString(`,"writer":`)
	writeJSONString(&c.buf, writer)
	c.buf.WriteString(`,"at":"`)
	c.buf.WriteString(at.UTC().Format(time.RFC3339Nano))
	c.buf.WriteString(`","events":[`)
}

// Add appends one encoded event.
func (c *CommitEncoder) Add(event []byte) {
	if c.n > 0 {
		c.buf.WriteByte(',')
	}
	c.buf.Write(event)
	c.n++
}

// Len is the number of events added; Size the body's size so far.
func (c *CommitEncoder) Len() int  { return c.n }
func (c *CommitEncoder) Size() int { return c.buf.Len() + 2 }

// Bytes returns the finished body. It is valid until the next Reset.
func (c *CommitEncoder) Bytes() []byte {
	c.buf.WriteString(`]}`)
	b := c.buf.Bytes()
	c.buf.Truncate(c.buf.Len() - 2)
	return b
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}
