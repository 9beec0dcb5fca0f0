package deploytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// integrityService is `agentbill serve --nats-url --http` on a data
// directory, run as a real process, with the CLI pointed at it.
type integrityService struct {
	bin, url, data, http string
	cmd                  *exec.Cmd
	log                  *testenv.SyncBuffer
}

func startIntegrityService(t *testing.T, url, data string) *integrityService {
	t.Helper()
	s := &integrityService{bin: testenv.Binary(t, testenv.AgentBillBinEnv, testenv.AgentBillPkg), url: url, data: data,
		http: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), log: &testenv.SyncBuffer{}}
	s.cmd = s.serveCommand()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(writerReadyTimeout)
	for !strings.Contains(s.log.String(), "writer serving") && !strings.Contains(s.log.String(), "ledger halted") {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", s.log)
		}
		time.Sleep(pollInterval)
	}
	for s.get(t, "/healthz") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not start:\n%s", s.log)
		}
		time.Sleep(pollInterval)
	}
	return s
}

// serveCommand is s's serve command (its NATS URL, data directory and
// gateway address, no default budget, then flags), logging to s.log.
func (s *integrityService) serveCommand(flags ...string) *exec.Cmd {
	args := append([]string{"serve", "--nats-url", s.url, "--data", s.data, "--http", s.http, "--default-budget", "none"}, flags...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stderr = s.log
	return cmd
}

func (s *integrityService) stop() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// get returns the status of GET path on the gateway (0 if it did not
// answer).
func (s *integrityService) get(t *testing.T, path string) int {
	code, _ := s.getBody(t, path)
	return code
}

func (s *integrityService) getBody(t *testing.T, path string) (int, string) {
	t.Helper()
	cl := http.Client{Timeout: attemptTimeout}
	res, err := cl.Get("http://" + s.http + path)
	if err != nil {
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitHalted waits until /readyz reports the writer halted.
func (s *integrityService) waitHalted(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(writerReadyTimeout)
	for {
		if _, body := s.getBody(t, "/readyz"); strings.Contains(body, "halted") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the writer did not halt:\n%s", s.log)
		}
		time.Sleep(pollInterval)
	}
}

// cli runs a client subcommand; it returns its output and exit code.
func (s *integrityService) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "AGENTBILL_NATS_URL="+s.url, "AGENTBILL_DATA="+s.data)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

func (s *integrityService) must(t *testing.T, code int, args ...string) string {
	t.Helper()
	out, got := s.cli(t, args...)
	if got != code {
		t.Fatalf("agentbill %s: exit %d, want %d:\n%s", strings.Join(args, " "), got, code, out)
	}
	return out
}

// plainNATS starts a nats-server with JetStream and no authorization at
// all: the misconfigured external NATS of the threat model.
func plainNATS(t *testing.T) *natsProc {
	t.Helper()
	dir := t.TempDir()
	port := testenv.FreePort(t)
	conf := filepath.Join(dir, "nats.conf")
	body := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream { store_dir: %q, sync_interval: always }\n", port, filepath.Join(dir, "store"))
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p := spawnNATS(t, natsServerBinary(t), dir, port, "-c", conf)
	p.waitReady(t)
	return p
}

// TestForgedCommitOnAnOpenNATSIsNeverApplied: on an external NATS without
// authorization, anyone can publish on the log. A forged top-up, fenced
// and linked into the chain exactly as the writer would, is still never
// applied: the writer halts at the first append it makes after it, the
// status is never the forged one, /readyz says 503, the metric counts
// the break, and audit verify exits non-zero naming the commit.
func TestForgedCommitOnAnOpenNATSIsNeverApplied(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server and agentbill subprocesses; skipped with -short")
	}
	n := plainNATS(t)
	s := startIntegrityService(t, n.url, filepath.Join(t.TempDir(), "data"))
	s.must(t, 0, "budget", "set", "--customer", "user_123", "--limit", "100", "--period", "month")
	s.must(t, 0, "preflight", "--customer", "user_123", "--agent", "a", "--units", "10")
	before := s.must(t, 0, "status", "--customer", "user_123", "--json")

	nc, err := nats.Connect(n.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := testenv.JetStream(t, nc)
	seq := testenv.ForgeTopUp(t, js, "user_123", nil)

	if got := s.must(t, 0, "status", "--customer", "user_123", "--json"); got != before {
		t.Errorf("status after the forgery:\n%s\nwant as before:\n%s", got, before)
	}
	// Raw requests, one attempt each: the CLI would retry unavailable
	// for its whole retry span.
	if out := rawRequest(t, nc, events.OpPreflight, `{"agent_id":"a","estimated_units":5}`); !strings.Contains(out, `"unavailable"`) {
		t.Fatalf("preflight after the forgery: %s; want unavailable", out)
	}
	s.waitHalted(t)
	out := rawRequest(t, nc, events.OpStatus, `{}`)
	if !strings.Contains(out, "halted") || !strings.Contains(out, fmt.Sprintf("sequence %d", seq)) {
		t.Errorf("status of a halted writer: %s; want unavailable naming the halt and sequence %d", out, seq)
	}
	if code, body := s.getBody(t, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "halted") {
		t.Errorf("/readyz: %d %s; want 503 and role halted", code, body)
	}
	if _, body := s.getBody(t, "/metrics"); !strings.Contains(body, `agentbill_integrity_violations_total{kind="signature"} 1`) {
		t.Errorf("/metrics lacks the counted break:\n%s", grepLines(body, "integrity"))
	}
	out = s.must(t, 1, "audit", "verify")
	if !strings.Contains(out, fmt.Sprintf("sequence %d", seq)) || !strings.Contains(out, "not signed by the service") {
		t.Errorf("audit verify after the forgery: %s", out)
	}
	if !strings.Contains(s.log.String(), "ledger halted") {
		t.Errorf("serve's log does not say it halted:\n%s", s.log)
	}
}

// TestDeletedStreamIsNeverStartedOver: a stream deleted behind the
// service's back makes it refuse to serve, live and after a restart,
// instead of starting an empty ledger; --accept-reset starts over and the
// log records it.
func TestDeletedStreamIsNeverStartedOver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server and agentbill subprocesses; skipped with -short")
	}
	n := plainNATS(t)
	data := filepath.Join(t.TempDir(), "data")
	s := startIntegrityService(t, n.url, data)
	s.must(t, 0, "budget", "set", "--customer", "user_123", "--limit", "100", "--period", "month")
	nc, err := nats.Connect(n.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := testenv.JetStream(t, nc)
	ctx := context.Background()
	if err := js.DeleteStream(ctx, events.StreamName); err != nil {
		t.Fatal(err)
	}
	rawRequest(t, nc, events.OpPreflight, `{"agent_id":"a","estimated_units":5}`)
	s.waitHalted(t)
	if out := rawRequest(t, nc, events.OpStatus, `{}`); !strings.Contains(out, "missing") {
		t.Errorf("status after the stream was deleted: %s", out)
	}
	s.stop()

	r := startIntegrityService(t, n.url, data)
	r.waitHalted(t)
	if out := rawRequest(t, nc, events.OpStatus, `{}`); !strings.Contains(out, "halted") {
		t.Errorf("status after a restart: %s", out)
	}
	if _, err := js.Stream(ctx, events.StreamName); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("after a restart the stream exists (%v): the service started an empty ledger", err)
	}
	r.stop()

	a := startIntegrityService(t, n.url, data)
	a.stop()
	a.log = &testenv.SyncBuffer{}
	a.cmd = a.serveCommand("--accept-reset", "stream lost, no backup: ticket 7")
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.stop)
	deadline := time.Now().Add(writerReadyTimeout)
	for !strings.Contains(a.log.String(), "writer serving") {
		if time.Now().After(deadline) {
			t.Fatalf("serve --accept-reset did not serve:\n%s", a.log)
		}
		time.Sleep(pollInterval)
	}
	if out := a.must(t, 0, "audit", "verify"); !strings.Contains(out, "reset accepted") || !strings.Contains(out, "ticket 7") {
		t.Errorf("audit verify after the reset: %s", out)
	}
}

// rawRequest sends one request for user_123 and returns the reply (one
// attempt: no client retries).
func rawRequest(t *testing.T, nc *nats.Conn, op events.Op, body string) string {
	t.Helper()
	m, err := nc.Request(events.RequestSubject(op, "user_123"), []byte(body), attemptTimeout)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	return string(m.Data)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
