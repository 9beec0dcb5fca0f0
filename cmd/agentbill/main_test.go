package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ProcessTimeout bounds every wait on a subprocess.
const ProcessTimeout = 20 * time.Second

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agentbill-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "agentbill")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build agentbill: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type service struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
}

// serve starts `agentbill serve` as a real process on dir and waits until
// it answers.
func serve(t *testing.T, dir string, port int, extra ...string) *service {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"serve", "--data", dir, "--nats-listen", addr}, extra...)
	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &service{cmd: cmd, url: "nats://" + addr, stderr: &stderr}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(ProcessTimeout)
	for {
		if _, code := s.cli(t, "status", "--customer", "probe"); code == 0 || code == 1 {
			if strings.Contains(stderr.String(), "writer serving") {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not start:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cli runs a client subcommand against the service; it returns stdout and
// the exit code.
func (s *service) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "AGENTBILL_NATS_URL="+s.url)
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

func (s *service) must(t *testing.T, want int, args ...string) string {
	t.Helper()
	out, code := s.cli(t, args...)
	if code != want {
		t.Fatalf("agentbill %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

func TestCLIExitCodesAndCrashRestart(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
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
	s = serve(t, dir, port)
	if after := s.must(t, 0, "status", "--customer", "user_123", "--json"); after != before {
		t.Errorf("status after crash:\n%s\nwant\n%s", after, before)
	}
	if after := s.must(t, 0, "status", "--customer", "odd.id *>", "--json"); after != beforeOdd {
		t.Errorf("status after crash:\n%s\nwant\n%s", after, beforeOdd)
	}

	// Clean stop on SIGTERM.
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

func TestServeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--default-budget", "lots"},
		{"serve", "--default-budget", "10/year"},
		{"serve", "--replicas", "2"},
		{"serve", "--nats-url", "nats://127.0.0.1:1", "--nats-config", "x.conf"},
	} {
		cmd := exec.Command(binary, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("agentbill %v: %v, want exit 2\n%s", args, err, out)
		}
	}
}

func TestNoDefaultBudgetRefusesUnknownCustomers(t *testing.T) {
	s := serve(t, t.TempDir(), freePort(t), "--default-budget", "none")
	out := s.must(t, 3, "preflight", "--customer", "stranger", "--agent", "a", "--units", "1")
	if !strings.Contains(out, "no_budget") {
		t.Errorf("output %q, want no_budget", out)
	}
	s.must(t, 1, "status", "--customer", "stranger")
}
