package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/agentbill/agentbill/backup"
	"github.com/agentbill/agentbill/embedded"
	"github.com/nats-io/nats.go"
)

// Files in the ledger's data directory that backup and restore read and
// write beside the JetStream store.
const (
	// signingPubName is the file of public keys that auditors check
	// commit signatures with, which a backup copies by default.
	signingPubName = "signing.pub"
	// trustedPubName is where an offline restore puts the backup's copy.
	trustedPubName = "trusted.pub"
	// progressLineBytes is how often progress is printed as a new line
	// when stderr is not a terminal (on a terminal one line is rewritten).
	progressLineBytes = 64 << 20
)

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := addNATSFlags(fs, true)
	out := fs.String("out", "", "backup directory: new or empty (or a finished backup, with --force)")
	force := fs.Bool("force", false, "replace the finished backup in --out")
	pub := fs.String("public-keys", "", "file of public keys auditors check commit signatures with (default DATA/"+signingPubName+" if it exists)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "agentbill backup: give --out DIR, and no other arguments")
		return errUsage
	}
	data := &nf.dataDir // --data: where serve keeps signing.pub
	if *pub == "" {
		if p := filepath.Join(*data, signingPubName); fileExists(p) {
			*pub = p
		}
	}
	s, err := nf.connect(ctx, nats.Name("agentbill-backup"))
	if err != nil {
		return err
	}
	defer s.close()
	p := newByteProgress(stderr)
	m, err := backup.Create(s.ctx, backup.Options{Conn: s.nc, Out: *out, Force: *force, PublicKeys: *pub, Progress: p.report})
	p.end()
	if err != nil {
		return s.explain(err)
	}
	printManifest(stdout, "backed up", *out, m)
	if m.PublicKeys == nil {
		fmt.Fprintf(stderr, "no public-key file included (none at %s; give --public-keys FILE)\n", filepath.Join(*data, signingPubName))
	}
	return nil
}

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := addNATSFlags(fs, true) // --data: restore offline into this data directory (without --nats-url), a fresh one no serve uses
	from := fs.String("from", "", "the backup directory")
	replicas := fs.Int("replicas", 0, "replicas of the restored streams: 1, or 3 on a cluster (default: as backed up)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var errs []error
	if *from == "" || fs.NArg() > 0 {
		errs = append(errs, errors.New("give --from DIR, and no other arguments"))
	}
	online := flagGiven(fs, "nats-url")
	if online && flagGiven(fs, "data") {
		errs = append(errs, errors.New("give --data DIR (offline, embedded server) or --nats-url URL, not both"))
	}
	if *replicas != 0 && *replicas != 1 && *replicas != 3 {
		errs = append(errs, fmt.Errorf("--replicas %d: use 1, or 3 on a cluster", *replicas))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "agentbill restore: %v\n", err)
		return errUsage
	}
	o := backup.RestoreOptions{From: *from, Replicas: *replicas, Progress: newByteProgress(stderr).reportOf}
	if !online {
		if nf.dataDir == "" {
			fmt.Fprintln(stderr, "agentbill restore: give --data DIR (offline) or --nats-url URL")
			return errUsage
		}
		return restoreOffline(ctx, o, nf.dataDir, stdout, stderr)
	}
	s, err := nf.connect(ctx, nats.Name("agentbill-restore"))
	if err != nil {
		return err
	}
	defer s.close()
	o.Conn = s.nc
	m, err := backup.Restore(s.ctx, o)
	if err != nil {
		return s.explain(err)
	}
	printManifest(stdout, "restored", *from, m)
	if m.PublicKeys != nil {
		fmt.Fprintf(stderr, "the backup's public keys are in %s: install them where auditors and the service read trusted keys (%s in the data directory)\n",
			filepath.Join(*from, m.PublicKeys.Name), trustedPubName)
	}
	return nil
}

// restoreOffline starts the embedded server on data, in process only (no
// TCP listener), restores onto it, installs the backup's public keys as
// data/trusted.pub, and stops the server.
func restoreOffline(ctx context.Context, o backup.RestoreOptions, data string, stdout, stderr io.Writer) error {
	m, err := backup.ReadManifest(o.From)
	if err != nil {
		return err
	}
	trusted := filepath.Join(data, trustedPubName)
	if err := backup.CheckPublicKeys(o.From, m, trusted); err != nil {
		return err
	}
	srv, err := embedded.Start(embedded.Options{StoreDir: data})
	if err != nil {
		return err
	}
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	nc, err := embeddedConn(srv)
	if err != nil {
		return fmt.Errorf("connect to the embedded server: %w", err)
	}
	defer nc.Close()
	o.Conn = nc
	if o.Replicas == 0 {
		o.Replicas = 1 // one embedded server: a cluster's R3 cannot be placed
	}
	if m, err = backup.Restore(ctx, o); err != nil {
		return err
	}
	if had, err := backup.InstallPublicKeys(o.From, m, trusted); err != nil {
		return err
	} else if had {
		fmt.Fprintf(stderr, "installed the backup's public keys as %s\n", trusted)
	}
	printManifest(stdout, "restored", o.From, m)
	return nil
}

// embeddedConn opens restore's in-process connection to the embedded
// server, as the service: restoring a stream needs rights no other user
// of the default mode has.
func embeddedConn(srv *embedded.Server) (*nats.Conn, error) {
	return srv.Connect("agentbill-restore")
}

// printManifest prints one line per stream of a backup.
func printManifest(w io.Writer, verb, dir string, m *backup.Manifest) {
	fmt.Fprintf(w, "%s %s (created %s, nats-server %s)\n", verb, dir, m.CreatedAt.Format("2006-01-02T15:04:05Z"), m.ServerVersion)
	for _, s := range m.Streams {
		fmt.Fprintf(w, "  %-24s %d messages, sequences %d to %d, %d bytes, sha256 %s\n",
			s.Name, s.State.Msgs, s.State.FirstSeq, s.State.LastSeq, s.Archive.Bytes, s.Archive.SHA256)
	}
	if m.PublicKeys != nil {
		fmt.Fprintf(w, "  %-24s %d bytes, sha256 %s\n", m.PublicKeys.Name, m.PublicKeys.Bytes, m.PublicKeys.SHA256)
	}
}

// byteProgress shows each stream's bytes so far on stderr: one line
// rewritten on a terminal, otherwise a line every progressLineBytes.
type byteProgress struct {
	w        io.Writer
	terminal bool
	stream   string
	printed  int64
}

func newByteProgress(w io.Writer) *byteProgress {
	return &byteProgress{w: w, terminal: isTerminal(w)}
}

func (p *byteProgress) report(stream string, n int64) { p.show(stream, n, 0) }

func (p *byteProgress) reportOf(stream string, n, total int64) { p.show(stream, n, total) }

func (p *byteProgress) show(stream string, n, total int64) {
	if stream != p.stream {
		p.end()
		p.stream, p.printed = stream, 0
	}
	of := ""
	if total > 0 {
		of = fmt.Sprintf(" of %d (%d%%)", total, n*100/total)
	}
	switch {
	case p.terminal:
		fmt.Fprintf(p.w, "\r%s: %d bytes%s", stream, n, of)
		p.printed = n
		if total > 0 && n == total { // a restore knows where it ends
			p.end()
		}
	case n-p.printed >= progressLineBytes || p.printed == 0:
		fmt.Fprintf(p.w, "%s: %d bytes%s\n", stream, n, of)
		p.printed = n
	}
}

// end finishes the terminal's progress line.
func (p *byteProgress) end() {
	if p.terminal && p.stream != "" {
		fmt.Fprintln(p.w)
	}
	p.stream = ""
}

// flagGiven reports whether the command line set the flag.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
