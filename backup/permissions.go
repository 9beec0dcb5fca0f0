package backup

import "fmt"

// CreatePublish lists the subjects Create publishes to: the snapshot
// request and the acks of its chunks, for every stream in Streams. A user
// that backs up also subscribes to its own reply inbox prefix (the
// chunks arrive there) and needs nothing else: no stream info, no
// consumer, no direct get.
func CreatePublish() []string {
	var out []string
	for _, s := range Streams {
		out = append(out,
			fmt.Sprintf("$JS.API.STREAM.SNAPSHOT.%s", s.Name),
			fmt.Sprintf("$JS.SNAPSHOT.ACK.%s.>", s.Name))
	}
	return out
}

// RestorePublish lists the subjects Restore publishes to: the stream info
// that checks the stream is absent, the restore request, and the chunks,
// for every stream in Streams; plus its reply inbox prefix to subscribe
// to. It cannot delete, purge or update a stream: the server refuses a
// restore over an existing one.
func RestorePublish() []string {
	var out []string
	for _, s := range Streams {
		out = append(out,
			fmt.Sprintf("$JS.API.STREAM.INFO.%s", s.Name),
			fmt.Sprintf("$JS.API.STREAM.RESTORE.%s", s.Name),
			fmt.Sprintf("$JS.SNAPSHOT.RESTORE.%s.>", s.Name))
	}
	return out
}
