// Package deploytest checks the deployment files at the repository root
// (nats.conf, docker-compose.yml) against the real thing: the config is
// parsed by the nats-server the module requires, then run by a standalone
// nats-server built from that module, as a subprocess, with the writer and
// the Go client talking to it over TCP on loopback.
package deploytest

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Files under test, in the repository.
var (
	natsConfPath = testenv.NATSConfPath
	composePath  = testenv.RepoPath("docker-compose.yml")
)

// Every wait is bounded.
const (
	serverReadyTimeout = 15 * time.Second
	processExitTimeout = 10 * time.Second
	writerReadyTimeout = 20 * time.Second
	writerStopTimeout  = 10 * time.Second
	callTimeout        = 15 * time.Second // one client call, retries included
	attemptTimeout     = 3 * time.Second  // one client attempt
	composeTimeout     = 60 * time.Second
	pollInterval       = 20 * time.Millisecond
)

// t0 is the writer's clock: fixed, so the status before and after a
// restart can be compared exactly.
var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	testenv.SetNATSConfPasswords()
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}

// TestNATSConfigParses loads the repo's nats.conf the way nats-server and
// `agentbill serve --nats-config` do, and checks what the service relies
// on. ProcessConfigFile also fails on warnings (unknown fields).
func TestNATSConfigParses(t *testing.T) {
	opts, err := server.ProcessConfigFile(natsConfPath)
	if err != nil {
		t.Fatalf("ProcessConfigFile(%s): %v", natsConfPath, err)
	}
	if !opts.JetStream {
		t.Error("JetStream is off")
	}
	if !opts.SyncAlways {
		t.Error("SyncAlways is false: acks would not wait for fsync (want sync_interval: always)")
	}
	if opts.StoreDir == "" {
		t.Error("store_dir is not set")
	}
	if opts.ServerName == "" {
		t.Error("server_name is not set")
	}
	if got, want := net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)), "127.0.0.1:4222"; got != want {
		t.Errorf("listen = %s, want %s (the clients' default URL)", got, want)
	}
	// The service sizes its largest messages (a group commit, a status
	// reply) for the server's default max_payload.
	if opts.MaxPayload < server.MAX_PAYLOAD_SIZE {
		t.Errorf("max_payload = %d, want at least the default %d", opts.MaxPayload, server.MAX_PAYLOAD_SIZE)
	}
}

// TestStandaloneServerSurvivesKill9 runs the repo's nats.conf (only its
// listen port and store_dir changed) in a standalone nats-server process,
// drives the writer and the Go client against it over TCP, kills the
// server with SIGKILL, restarts it on the same store, and shows a fresh
// writer rebuilds exactly the same state.
//
// A SIGKILL leaves the OS page cache intact, so this proves the service
// recovers from the log after a server crash; it cannot prove fsync (power
// loss). That fsync is on in the running server is checked through /varz.
func TestStandaloneServerSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server subprocesses; skipped with -short")
	}
	bin := natsServerBinary(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	port := testenv.FreePort(t)
	conf := testenv.WriteNATSConf(t, filepath.Join(dir, "nats.conf"), port, store)
	mon := testenv.FreePort(t)

	srv := startNATS(t, bin, dir, port, "-c", conf, "-m", strconv.Itoa(mon))
	checkVarz(t, mon, port, dir, store)

	w := startWriter(t, srv.url)
	c := newClient(t, srv.url)
	const cid = "user_123"
	recordReq := drive(t, c, cid)
	before := status(t, c, cid)
	wantUnits(t, "used", before.Used, "25")
	wantUnits(t, "reserved", before.Reserved, "10")
	wantUnits(t, "remaining", before.Remaining.Units, "65")
	if before.OpenReservations != 1 {
		t.Errorf("open_reservations = %d, want 1", before.OpenReservations)
	}
	lastSeq := w.Stats().LastSeq.Load()
	if lastSeq == 0 {
		t.Fatal("the writer appended nothing")
	}

	srv.kill9(t)
	w.stop(t)
	c.Conn().Close()

	srv2 := startNATS(t, bin, dir, port, "-c", conf, "-m", strconv.Itoa(mon))
	w2 := startWriter(t, srv2.url)
	if got := w2.Stats().ReplayedSeq.Load(); got != lastSeq {
		t.Errorf("fresh writer replayed up to sequence %d, want %d", got, lastSeq)
	}
	c2 := newClient(t, srv2.url)
	after := status(t, c2, cid)
	if got, want := jsonOf(t, after), jsonOf(t, before); got != want {
		t.Errorf("status after kill -9 and restart:\n got %s\nwant %s", got, want)
	}

	// The idempotency key outlived the crash: a retry appends nothing.
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	dup, err := c2.Record(ctx, cid, recordReq)
	if err != nil {
		t.Fatalf("retried record: %v", err)
	}
	if dup.Status != ledger.StatusDuplicate {
		t.Errorf("retried record status = %q, want %q", dup.Status, ledger.StatusDuplicate)
	}
	wantUnits(t, "retried record charged_units", dup.ChargedUnits, "25")
	if got := w2.Stats().LastSeq.Load(); got != lastSeq {
		t.Errorf("after the retry the stream's last sequence is %d, want %d", got, lastSeq)
	}
	if got, want := jsonOf(t, status(t, c2, cid)), jsonOf(t, before); got != want {
		t.Errorf("status after the retried record:\n got %s\nwant %s", got, want)
	}
}

// localArgs maps the container's nats-server arguments to this machine:
// the repo's nats.conf for the mounted one, loopback for any listen host,
// free ports, and a temp dir for a store given by flag.
func localArgs(t *testing.T, command []string, port, mon int, storeDir string) []string {
	t.Helper()
	conf, err := filepath.Abs(natsConfPath)
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]string{
		"-c": conf, "--config": conf,
		"-a": "127.0.0.1", "--addr": "127.0.0.1", "--net": "127.0.0.1",
		"-p": strconv.Itoa(port), "--port": strconv.Itoa(port),
		"-m": strconv.Itoa(mon), "--http_port": strconv.Itoa(mon),
		"-sd": storeDir, "--store_dir": storeDir,
	}
	args := make([]string, 0, len(command)+2)
	for i := 0; i < len(command); i++ {
		args = append(args, command[i])
		if v, ok := local[command[i]]; ok && i+1 < len(command) {
			args = append(args, v)
			i++
		}
	}
	// The container publishes 4222 from its own namespace; here the port
	// must be free.
	return append(args, "-p", strconv.Itoa(port))
}

// TestComposeConfigValid validates docker-compose.yml with docker-compose,
// when it is installed (no Docker engine is needed for `config`).
func TestComposeConfigValid(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed; cannot validate docker-compose.yml")
	}
	ctx, cancel := context.WithTimeout(context.Background(), composeTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-f", composePath, "config", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
}

// drive sets a budget of 100 for cid, reserves 30 and records 25 of it
// (5 released), and leaves a reservation of 10 open. It returns the record
// request, idempotency key included, for a retry.
func drive(t *testing.T, c *client.Client, cid string) ledger.RecordRequest {
	t.Helper()
	setBudget(t, c, cid, "100")
	pf := preflight(t, c, cid, "research_agent", "30")
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := ledger.RecordRequest{AgentID: "research_agent", Units: units(t, "25"),
		ReservationID: pf.ReservationID, IdempotencyKey: "deploytest-record-1"}
	rec, err := c.Record(ctx, cid, req)
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	if rec.Status != ledger.StatusRecorded {
		t.Fatalf("record status = %q, want %q", rec.Status, ledger.StatusRecorded)
	}
	wantUnits(t, "charged_units", rec.ChargedUnits, "25")
	wantUnits(t, "released_units", rec.ReleasedUnits, "5")
	preflight(t, c, cid, "writer_agent", "10")
	return req
}

func setBudget(t *testing.T, c *client.Client, cid, limit string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := ledger.BudgetRequest{Limit: units(t, limit), Period: string(ledger.PeriodMonth)}
	if _, err := c.SetBudget(ctx, cid, req); err != nil {
		t.Fatalf("set budget: %v", err)
	}
}

func preflight(t *testing.T, c *client.Client, cid, agent, est string) *ledger.PreflightReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	r, err := c.Preflight(ctx, cid, ledger.PreflightRequest{AgentID: agent, EstimatedUnits: units(t, est)})
	if err != nil {
		t.Fatalf("preflight: %v", err)
	}
	if !r.Approved {
		t.Fatalf("preflight of %s for %s refused: %s (%s)", est, agent, r.Reason, r.Message)
	}
	return r
}

func status(t *testing.T, c *client.Client, cid string) *ledger.StatusReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	st, err := c.Status(ctx, cid)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func units(t *testing.T, s string) *events.Units {
	t.Helper()
	u, err := events.ParseUnits(s)
	if err != nil {
		t.Fatal(err)
	}
	return &u
}

func wantUnits(t *testing.T, what string, got events.Units, want string) {
	t.Helper()
	if got.String() != want {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// natsServerBinary is the standalone nats-server of the version go.mod
// requires, built from the module cache once for the package.
func natsServerBinary(t *testing.T) string {
	return testenv.Binary(t, testenv.NATSServerBinEnv, testenv.NATSServerPkg)
}

// natsProc is a nats-server subprocess.
type natsProc struct {
	cmd  *exec.Cmd
	url  string
	log  string        // its stdout and stderr
	done chan struct{} // closed once the process has exited and been reaped
}

// startNATS starts bin with args in workDir, kills it in t.Cleanup, and
// waits until it accepts clients on 127.0.0.1:port with JetStream ready.
func startNATS(t *testing.T, bin, workDir string, port int, args ...string) *natsProc {
	t.Helper()
	p := spawnNATS(t, bin, workDir, port, args...)
	p.waitReady(t)
	return p
}

// spawnNATS starts bin with args in workDir and kills it in t.Cleanup,
// without waiting for it (a cluster node is ready only with its peers).
func spawnNATS(t *testing.T, bin, workDir string, port int, args ...string) *natsProc {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "nats-server-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := &natsProc{cmd: exec.Command(bin, args...), log: logf.Name(), done: make(chan struct{}),
		url: "nats://127.0.0.1:" + strconv.Itoa(port)}
	p.cmd.Dir, p.cmd.Stdout, p.cmd.Stderr = workDir, logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start nats-server: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("nats-server %v log:\n%s", args, b)
		}
	})
	return p
}

// waitReady polls until the server accepts a client and answers a
// JetStream API call.
func (p *natsProc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(serverReadyTimeout)
	for ; time.Now().Before(deadline); time.Sleep(pollInterval) {
		select {
		case <-p.done:
			t.Fatalf("nats-server exited: %v", p.cmd.ProcessState)
		default:
		}
		if jetStreamReady(p.url) {
			return
		}
	}
	t.Fatalf("nats-server not ready within %s", serverReadyTimeout)
}

func jetStreamReady(url string) bool {
	nc, err := testenv.NATSConfCreds("service").Connect(url, nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err == nil
}

// kill9 kills the server with SIGKILL (no shutdown, no flush) and checks
// it died of the signal.
func (p *natsProc) kill9(t *testing.T) {
	t.Helper()
	p.kill(t)
	if st := p.cmd.ProcessState; st == nil || st.Exited() {
		t.Fatalf("nats-server was not killed by a signal: %v", st)
	}
}

func (p *natsProc) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill() // SIGKILL
	select {
	case <-p.done:
	case <-time.After(processExitTimeout):
		t.Errorf("nats-server pid %d did not exit within %s of SIGKILL", p.cmd.Process.Pid, processExitTimeout)
	}
}

// checkVarz reads the running server's /varz and checks the settings the
// service relies on are in force. A relative store is resolved in workDir,
// the server's working directory.
func checkVarz(t *testing.T, monPort, port int, workDir, storeDir string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://127.0.0.1:" + strconv.Itoa(monPort) + "/varz")
	if err != nil {
		t.Fatalf("varz: %v", err)
	}
	defer resp.Body.Close()
	var v server.Varz
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("varz: %v", err)
	}
	if v.Host != "127.0.0.1" || v.Port != port {
		t.Errorf("server listens on %s:%d, want 127.0.0.1:%d", v.Host, v.Port, port)
	}
	js := v.JetStream.Config
	if js == nil {
		t.Fatal("varz: JetStream is not enabled")
	}
	if !js.SyncAlways {
		t.Error("varz: sync_always is false in the running server")
	}
	got := js.StoreDir
	if !filepath.IsAbs(got) {
		got = filepath.Join(workDir, got)
	}
	if !strings.HasPrefix(got, storeDir) {
		t.Errorf("varz: store_dir = %s, want under %s", got, storeDir)
	}
	if v.MaxPayload < server.MAX_PAYLOAD_SIZE {
		t.Errorf("varz: max_payload = %d, want at least %d", v.MaxPayload, server.MAX_PAYLOAD_SIZE)
	}
}

// runningWriter is a projections.Writer running on its own TCP connection.
type runningWriter struct {
	*projections.Writer
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned; err is then set
	err    error
	nc     *nats.Conn
}

// startWriter connects to url, runs a writer with the fixed clock t0, and
// waits until it serves. It is stopped in t.Cleanup if not before.
func startWriter(t *testing.T, url string) *runningWriter {
	t.Helper()
	nc := connect(t, url, "agentbill-writer")
	pw := projections.New(projections.Config{
		Conn:   nc,
		Now:    func() time.Time { return t0 },
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	w := &runningWriter{Writer: pw, cancel: cancel, done: make(chan struct{}), nc: nc}
	go func() {
		w.err = pw.Run(ctx)
		close(w.done)
	}()
	t.Cleanup(func() { w.stop(t) })
	deadline := time.Now().Add(writerReadyTimeout)
	for !pw.Ready() {
		select {
		case <-w.done:
			t.Fatalf("writer stopped: %v", w.err)
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer not ready within %s", writerReadyTimeout)
		}
	}
	return w
}

// stop ends the writer, waits for Run to return and closes its connection.
func (w *runningWriter) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	select {
	case <-w.done:
		if w.err != nil {
			t.Errorf("writer returned %v", w.err)
			w.err = nil
		}
	case <-time.After(writerStopTimeout):
		t.Errorf("writer did not stop within %s", writerStopTimeout)
	}
	w.nc.Close()
}

// newClient returns a client with the admin user's credentials (it sets
// budgets).
func newClient(t *testing.T, url string) *client.Client {
	t.Helper()
	return client.New(connectAs(t, url, "agentbill-deploytest", "admin"), client.WithTimeout(attemptTimeout))
}

// connect connects with the service user's credentials.
func connect(t *testing.T, url, name string) *nats.Conn {
	t.Helper()
	return connectAs(t, url, name, "service")
}

// connectAs connects as one of nats.conf's users.
func connectAs(t *testing.T, url, name, user string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := testenv.NATSConfCreds(user).Connect(url, append([]nats.Option{nats.Name(name), nats.Timeout(2 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}
