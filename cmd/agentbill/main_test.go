package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/nats-io/nats.go"
)

// ProcessTimeout bounds every wait on a subprocess.
const ProcessTimeout = 20 * time.Second

var binary string

func TestMain(m *testing.M) {
	var err error
	binary, err = testenv.BuildBinary(testenv.AgentBillBinEnv, testenv.AgentBillPkg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "build agentbill: %v\n", err)
		os.Exit(1)
	}
	testenv.SetNATSConfPasswords()
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}

type service struct {
	cmd    *exec.Cmd
	url    string
	data   string // serve's --data: the CLI finds the admin credential and the public keys there
	stderr *testenv.SyncBuffer
}

// serve starts `agentbill serve` as a real process on dir and waits until
// it answers.
func serve(t *testing.T, dir string, port int, extra ...string) *service {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := &service{url: "nats://" + addr, data: dir}
	answers := func() bool {
		_, code := s.cli(t, "status", "--customer", "probe")
		return code == 0 || code == 1
	}
	s.cmd, s.stderr = startServe(t, nil, answers, append([]string{"--data", dir, "--nats-listen", addr}, extra...)...)
	return s
}

// startServe starts `agentbill serve args...` with env added to the
// test's environment, kills it when the test ends, and waits until its
// log says the writer serves and ready (if not nil) reports true.
func startServe(t *testing.T, env []string, ready func() bool, args ...string) (*exec.Cmd, *testenv.SyncBuffer) {
	t.Helper()
	return startServeIn(t, "", append(os.Environ(), env...), ready, args...)
}

// startServeIn is startServe in the working directory dir ("": the
// test's), with exactly the environment env.
func startServeIn(t *testing.T, dir string, env []string, ready func() bool, args ...string) (*exec.Cmd, *testenv.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve"}, args...)...)
	cmd.Dir, cmd.Env = dir, env
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(ProcessTimeout)
	for !strings.Contains(stderr.String(), "writer serving") || (ready != nil && !ready()) {
		if time.Now().After(deadline) {
			t.Fatalf("service did not start:\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd, stderr
}

// env is the environment of a CLI run against the service: its URL, and
// its data directory, so the CLI connects as the local admin.
func (s *service) env() []string {
	return append(os.Environ(), "AGENTBILL_NATS_URL="+s.url, "AGENTBILL_DATA="+s.data)
}

// cli runs a client subcommand against the service as the local admin; it
// returns stdout and the exit code.
func (s *service) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = s.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String() + stderr.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), 0
}

// stop stops the service with SIGTERM and fails the test unless it exits
// cleanly: a clean stop takes the gateway down with the writer.
func (s *service) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM\n%s", err, s.stderr)
		}
	case <-time.After(ProcessTimeout):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

func (s *service) must(t *testing.T, want int, args ...string) string {
	t.Helper()
	out, code := s.cli(t, args...)
	if code != want {
		t.Fatalf("agentbill %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

func TestCLIExitCodesAndCrashRestart(t *testing.T) {
	dir, port := t.TempDir(), testenv.FreePort(t)
	s := serve(t, dir, port)

	s.must(t, 0, "budget", "set", "--customer", "user_123", "--limit", "100", "--period", "month",
		"--threshold", "0.8", "--upgrade-url", "https://example.com/upgrade", "--agent-limit", "research_agent=80")
	out := s.must(t, 0, "preflight", "--customer", "user_123", "--agent", "research_agent", "--units", "60", "--json")
	var pf struct {
		Approved      bool   `json:"approved"`
		ReservationID string `json:"reservation_id"`
	}
	if err := json.Unmarshal([]byte(out), &pf); err != nil || !pf.Approved {
		t.Fatalf("preflight --json: %q %v", out, err)
	}
	s.must(t, 0, "record", "--customer", "user_123", "--agent", "research_agent", "--units", "55", "--reservation", pf.ReservationID)
	refused := s.must(t, 3, "preflight", "--customer", "user_123", "--agent", "research_agent", "--units", "30")
	if !strings.Contains(refused, "agent_limit_exceeded") {
		t.Errorf("refusal output %q lacks the reason", refused)
	}
	s.must(t, 1, "preflight", "--customer", "user_123", "--agent", "a", "--units", "-1")
	s.must(t, 1, "release", "--customer", "user_123", "--reservation", "nope")
	s.must(t, 2, "preflight", "--agent", "a", "--units", "1")
	s.must(t, 2, "frobnicate")
	s.must(t, 0, "topup", "--customer", "user_123", "--units", "10.25", "--note", "goodwill")
	s.must(t, 0, "preflight", "--customer", "odd.id *>", "--agent", "a", "--units", "2")
	before := s.must(t, 0, "status", "--customer", "user_123", "--json")
	beforeOdd := s.must(t, 0, "status", "--customer", "odd.id *>", "--json")

	// Crash: SIGKILL, no shutdown at all. Everything acknowledged is on disk.
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = s.cmd.Wait()
	// The restarted writer takes the dead one's lease over and appends a
	// takeover commit (projections.TakeoverHeader): the status is the same
	// byte for byte but for as_of_seq, one further on.
	s = serve(t, dir, port)
	for _, c := range []struct{ id, before string }{{"user_123", before}, {"odd.id *>", beforeOdd}} {
		after := s.must(t, 0, "status", "--customer", c.id, "--json")
		want := asOfSeq.ReplaceAllStringFunc(c.before, func(m string) string {
			n, _ := strconv.Atoi(strings.TrimPrefix(m, `"as_of_seq":`))
			return `"as_of_seq":` + strconv.Itoa(n+1)
		})
		if after != want {
			t.Errorf("status after crash:\n%s\nwant\n%s", after, want)
		}
	}

	// Clean stop on SIGTERM.
	s.stop(t)
}

func TestNoDefaultBudgetRefusesUnknownCustomers(t *testing.T) {
	s := serve(t, t.TempDir(), testenv.FreePort(t), "--default-budget", "none")
	out := s.must(t, 3, "preflight", "--customer", "stranger", "--agent", "a", "--units", "1")
	if !strings.Contains(out, "no_budget") {
		t.Errorf("output %q, want no_budget", out)
	}
	s.must(t, 1, "status", "--customer", "stranger")
}

func TestCLIAuditReplayAndVerify(t *testing.T) {
	s := serve(t, t.TempDir(), testenv.FreePort(t))
	s.must(t, 0, "budget", "set", "--customer", "user_123", "--limit", "100", "--period", "month")
	s.must(t, 0, "preflight", "--customer", "user_123", "--agent", "a", "--units", "60")
	s.must(t, 0, "record", "--customer", "user_123", "--agent", "a", "--units", "55")
	s.must(t, 3, "preflight", "--customer", "user_123", "--agent", "a", "--units", "50")

	csvOut := s.must(t, 0, "audit", "--customer", "user_123", "--format", "csv")
	lines := strings.Split(strings.TrimSpace(csvOut), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "seq,at,event_id,type") ||
		!strings.Contains(lines[3], ",recorded,a,") || !strings.HasSuffix(lines[3], ",100,55,0,45,0,,,") { // limit, used, reserved, remaining, grants, grant, funded_by, counted_scopes
		t.Errorf("audit csv:\n%s", csvOut)
	}
	jsonOut := s.must(t, 0, "audit", "--customer", "user_123", "--json")
	if n := strings.Count(jsonOut, "\n"); n != 5 {
		t.Errorf("audit --json printed %d lines, want 5:\n%s", n, jsonOut)
	}
	s.must(t, 2, "audit")
	s.must(t, 1, "audit", "--customer", "user_123", "--format", "xml")
	s.must(t, 1, "audit", "--customer", "user_123", "--from", "yesterday")

	if out := s.must(t, 0, "audit", "verify"); !strings.Contains(out, "chain intact: 4 commits") {
		t.Errorf("audit verify: %s", out)
	}
	if out := s.must(t, 0, "replay", "--until-seq", "1", "--json"); !strings.Contains(out, `"used":0`) || !strings.Contains(out, `"as_of_seq":1`) {
		t.Errorf("replay --until-seq 1: %s", out)
	}
	if out := s.must(t, 0, "replay", "--customer", "user_123"); !strings.Contains(out, "user_123") || !strings.Contains(out, "45") {
		t.Errorf("replay: %s", out)
	}
	if out := s.must(t, 0, "replay", "--verify"); !strings.Contains(out, "1 customers, 1 compared, 0 differ") {
		t.Errorf("replay --verify: %s", out)
	}
	s.must(t, 2, "replay", "--until-seq", "1", "--until-time", "2026-01-01")
	s.must(t, 2, "replay", "--verify", "--until-seq", "1")
}

// TestAuditVerifyDetectsForgery: a commit appended behind the writer's
// back breaks the chain. Only the service may append, so the forger here
// holds nats.conf's service credential (a stolen one; in the default mode
// the service's key never leaves serve's memory).
func TestAuditVerifyDetectsForgery(t *testing.T) {
	s := serveSecured(t)
	s.must(t, 0, "admin", "budget", "set", "--customer", "user_123", "--limit", "100", "--period", "month")
	nc, err := testenv.NATSConfCreds("service").Connect(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg := nats.NewMsg("agentbill.log.0")
	msg.Data = []byte(`{"v":1,"id":"forged","writer":"0","at":"2026-01-01T00:00:00Z","events":[]}`)
	if _, err := nc.RequestMsg(msg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if out := s.must(t, 1, "auditor", "audit", "verify"); !strings.Contains(out, "broken link at sequence 2") {
		t.Errorf("audit verify after forgery: %s", out)
	}
}

var asOfSeq = regexp.MustCompile(`"as_of_seq":[0-9]+`)

// benchResult is one scenario's row of bench --json.
type benchResult struct {
	Scenario string `json:"scenario"`
	Ops      uint64 `json:"ops"`
	Errors   uint64 `json:"errors"`
	Note     string `json:"note"`
}

// benchOnly runs bench --only scenario --json with args and returns the
// scenario's row: the report must hold the baseline and that one only.
func benchOnly(t *testing.T, scenario string, args ...string) benchResult {
	t.Helper()
	out, err := exec.Command(binary, append(append([]string{"bench"}, args...), "--only", scenario, "--json")...).Output()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var rep struct {
		Results []benchResult `json:"results"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	if n := len(rep.Results); n != 2 || rep.Results[1].Scenario != scenario {
		t.Fatalf("want the baseline and %s, got %s", scenario, out)
	}
	return rep.Results[1]
}

// The flood scenario runs only when named, and its ordinary customers are
// never answered unavailable: none holds more than one place in the
// writer's queue, far under its per-customer cap.
func TestBenchFlood(t *testing.T) {
	f := benchOnly(t, "flood", "--duration", "400ms", "--clients", "2")
	if f.Ops == 0 || f.Errors != 0 || !strings.Contains(f.Note, "during the flood") || !strings.Contains(f.Note, "0 unavailable, 0 other errors. ") {
		t.Errorf("flood: %+v; want ordinary ops, no errors and no unavailable during the flood", f)
	}
	// The flooder has its own rate limit (--flood-rate-limit, default
	// 100 a second, burst 200): 256 clients without a pause spend the
	// burst at once, and then are refused rate_limited.
	m := regexp.MustCompile(`its budget's, 100 a second, burst 200; .*\): \d+ cycles, (\d+) preflights refused rate_limited`).FindStringSubmatch(f.Note)
	if m == nil || m[1] == "0" {
		t.Errorf("flood note %q: want the flooder's limit announced and its preflights refused rate_limited", f.Note)
	}
}

// TestBenchSnapshotStall: the snapshot_stall scenario loads its customers,
// forces a snapshot during its second run, and says how long the shadow
// took to encode and store it and what both runs' tails were.
func TestBenchSnapshotStall(t *testing.T) {
	r := benchOnly(t, "snapshot_stall", "--duration", "600ms", "--clients", "4", "--customers", "500")
	if r.Ops == 0 || r.Errors != 0 || !strings.Contains(r.Note, "500 customers") ||
		!regexp.MustCompile(`without a snapshot p99 \d+us p99\.9 \d+us.*; with one forced .* p99\.9 \d+us \(p99\.9 [-+]\d+\.\d ms\); the shadow encoded it in \d+ ms \(\d+\.\d MB\) and it was stored in \d+ ms \(\d+\.\d MB compressed\)`).MatchString(r.Note) {
		t.Errorf("snapshot_stall: %+v; want ops, no errors, both runs' tails and the snapshot's encode and store times", r)
	}
}

// The benchmark is a product feature: a short run must produce every
// scenario with real figures and no errors.
func TestBenchProducesEveryScenario(t *testing.T) {
	out, err := exec.Command(binary, "bench", "--duration", "150ms", "--clients", "4", "--customers", "20", "--json").Output()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var rep struct {
		Results []struct {
			Scenario  string  `json:"scenario"`
			OpsPerSec float64 `json:"ops_per_sec"`
			Errors    uint64  `json:"errors"`
			Ratio     float64 `json:"ratio_to_request_reply"`
			CPU       float64 `json:"cpu_us_per_op"`
			CPURatio  float64 `json:"cpu_ratio_to_request_reply"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	want := []string{"nats_request_reply", "js_append_single", "js_append_batch_100", "js_append_batch_1000",
		"preflight_record_spread", "preflight_record_spread_scoped", "preflight_record_hot", "preflight_mostly_refused", "preflight_at_half_load", "replay",
		"commit_signature"}
	if len(rep.Results) != len(want) {
		t.Fatalf("bench reported %d scenarios, want %d:\n%s", len(rep.Results), len(want), out)
	}
	for i, r := range rep.Results {
		if r.Scenario != want[i] || r.OpsPerSec <= 0 || r.Errors != 0 || (i > 0 && r.Ratio <= 0) {
			t.Errorf("scenario %d: %+v, want %s with throughput, a ratio and no errors", i, r, want[i])
		}
		// Every load scenario reports the process's CPU per op, and beside
		// the baseline's; replay and signing measure no requests.
		if load := r.Scenario != "replay" && r.Scenario != "commit_signature"; load && (r.CPU <= 0 || i > 0 && r.CPURatio <= 0) {
			t.Errorf("scenario %s: cpu %.1f us/op, %.2f x the baseline's; want both measured", r.Scenario, r.CPU, r.CPURatio)
		}
	}
}
