package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
)

// secured is `agentbill serve --nats-config` on a copy of the repo's
// nats.conf (only listen and store_dir changed), with the fresh passwords
// TestMain put in the environment.
type secured struct {
	url  string
	data string // serve's data directory: the CLI finds its public keys there
}

// securedConfig writes the copy of nats.conf.
func securedConfig(t *testing.T) (s *secured, conf string) {
	t.Helper()
	dir := t.TempDir()
	port := testenv.FreePort(t)
	conf = testenv.WriteNATSConf(t, filepath.Join(dir, "nats.conf"), port, filepath.Join(dir, "store"))
	return &secured{url: fmt.Sprintf("nats://127.0.0.1:%d", port)}, conf
}

func serveSecured(t *testing.T) *secured {
	t.Helper()
	s, conf := securedConfig(t)
	s.data = filepath.Join(t.TempDir(), "data")
	startServe(t, s.credsEnv("service"), nil, "--data", s.data, "--nats-config", conf)
	return s
}

// credsEnv is the environment that makes the CLI connect as user.
func (s *secured) credsEnv(user string) []string {
	c := testenv.NATSConfCreds(user)
	return []string{"AGENTBILL_NATS_USER=" + c.User, "AGENTBILL_NATS_PASSWORD=" + c.Password,
		"AGENTBILL_NATS_INBOX_PREFIX=" + c.InboxPrefix}
}

// as runs the CLI as user; it returns stdout and stderr, and the exit code.
func (s *secured) as(t *testing.T, user string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), "AGENTBILL_NATS_URL="+s.url, "AGENTBILL_DATA="+s.data), s.credsEnv(user)...)
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

func (s *secured) must(t *testing.T, want int, user string, args ...string) string {
	t.Helper()
	out, code := s.as(t, user, args...)
	if code != want {
		t.Fatalf("as %s: agentbill %s: exit %d, want %d\n%s", user, strings.Join(args, " "), code, want, out)
	}
	return out
}

// TestCLIRolesAgainstRepoNATSConf runs serve with the repo's nats.conf and
// the CLI as each role.
func TestCLIRolesAgainstRepoNATSConf(t *testing.T) {
	s := serveSecured(t)
	s.must(t, 0, "admin", "budget", "set", "--customer", "user_123", "--limit", "100", "--period", "month")
	s.must(t, 0, "agent", "preflight", "--customer", "user_123", "--agent", "a", "--units", "10")
	s.must(t, 0, "agent-user_123", "record", "--customer", "user_123", "--agent", "a", "--units", "4")

	// Wrong or missing credentials cannot connect at all.
	cmd := exec.Command(binary, "status", "--customer", "user_123", "--nats-url", s.url)
	cmd.Env = []string{"HOME=" + t.TempDir()}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "uthorization") {
		t.Errorf("anonymous status: %v\n%s", err, out)
	}

	// Denials come back as permission_denied, at once, not after retries.
	for _, c := range []struct{ user, args string }{
		{"agent", "topup --customer user_123 --units 1000"},
		{"agent", "grant --customer user_123 --units 1000"},
		{"agent", "budget set --customer user_123 --limit 1000000 --period month"},
		{"agent-user_123", "status --customer user_456"},
		{"agent-user_123", "preflight --customer user_1234 --agent a --units 1"},
		{"auditor", "status --customer user_123"},
		// Reading the log or the key bucket fails as fast as a request.
		{"agent", "audit verify"},
		{"agent", "audit --customer user_123"},
		{"agent", "replay --customer user_123"},
		{"agent", "replay --verify"},
		{"agent", "keys list"},
		{"auditor", "keys create --role admin"},
	} {
		start := time.Now()
		out := s.must(t, 1, c.user, strings.Fields(c.args)...)
		if !strings.Contains(out, "permission_denied") {
			t.Errorf("as %s: %s: %s", c.user, c.args, out)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("as %s: %s took %s", c.user, c.args, d)
		}
	}

	// The auditor reads the log; the agent cannot.
	if out := s.must(t, 0, "auditor", "audit", "verify"); !strings.Contains(out, "chain intact: 3 commits") {
		t.Errorf("audit verify as auditor: %s", out)
	}
	if out := s.must(t, 0, "auditor", "audit", "--customer", "user_123", "--format", "csv"); strings.Count(out, "\n") != 4 {
		t.Errorf("audit as auditor:\n%s", out)
	}
	s.must(t, 0, "auditor", "replay", "--customer", "user_123")
	s.must(t, 1, "agent", "audit", "verify")
	s.must(t, 1, "agent", "audit", "--customer", "user_123")
}

// hostileIDs are customer IDs that must each land on exactly one customer.
var hostileIDs = []string{
	"acme.prod", "a*", "a>", ">", "*", "a b", " lead", "trail ", "~", "~abc", "~" + "dXNlcl8xMjM",
	"user_123.", "..", "日本語のお客様", "émoji🙂", "tab-free_but.dots.and*stars>",
	strings.Repeat("x", 64), strings.Repeat("x", 65), strings.Repeat("é", 64), // 128 bytes
}

// TestCLIHostileCustomerIDs gives every hostile ID its own budget through
// the CLI and reads each back: no ID reaches another's ledger.
func TestCLIHostileCustomerIDs(t *testing.T) {
	s := serveSecured(t)
	for i, id := range hostileIDs {
		s.must(t, 0, "admin", "budget", "set", "--customer", id, "--limit", strconv.Itoa(1000+i), "--period", "month")
	}
	for i, id := range hostileIDs {
		s.must(t, 0, "agent", "preflight", "--customer", id, "--agent", "a", "--units", strconv.Itoa(i+1))
	}
	for i, id := range hostileIDs {
		var st struct {
			CustomerID string          `json:"customer_id"`
			Limit      json.Number     `json:"limit"`
			Reserved   json.Number     `json:"reserved"`
			Open       int             `json:"open_reservations"`
			Agents     json.RawMessage `json:"agents"`
		}
		out := s.must(t, 0, "agent", "status", "--customer", id, "--json")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status %q: %v\n%s", id, err, out)
		}
		if st.CustomerID != id || st.Limit.String() != strconv.Itoa(1000+i) ||
			st.Reserved.String() != strconv.Itoa(i+1) || st.Open != 1 {
			t.Errorf("status %q: got customer %q limit %s reserved %s open %d, want limit %d reserved %d open 1",
				id, st.CustomerID, st.Limit, st.Reserved, st.Open, 1000+i, i+1)
		}
	}
	// Too long or invalid: refused by the client before anything is sent.
	for _, id := range []string{strings.Repeat("x", 129), "bad\x01id", "bad\xffutf8"} {
		out := s.must(t, 1, "agent", "status", "--customer", id)
		if !strings.Contains(out, "invalid_argument") {
			t.Errorf("status %q: %s", id, out)
		}
	}
}

// TestServeWithNATSConfigNeedsServiceCredentials: the embedded server run
// from nats.conf refuses serve's own connections without credentials, and
// serve says what to do. (With another role's credentials serve logs the
// permission violations and keeps retrying, as it does while a cluster
// comes up.)
func TestServeWithNATSConfigNeedsServiceCredentials(t *testing.T) {
	_, conf := securedConfig(t)
	for _, c := range []struct {
		creds []string
		want  string
	}{
		{nil, "needs the service user's credentials"},
		{[]string{"AGENTBILL_NATS_USER=service", "AGENTBILL_NATS_PASSWORD=" + testenv.NATSConfCreds("agent").Password}, "needs the service user's credentials"},
	} {
		cmd := exec.Command(binary, "serve", "--data", filepath.Join(t.TempDir(), "data"), "--nats-config", conf)
		cmd.Env = append(os.Environ(), c.creds...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("serve with %v: %v, want a failure saying %q:\n%s", c.creds, err, c.want, stderr.String())
			}
		case <-time.After(ProcessTimeout):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("serve with %v kept running:\n%s", c.creds, stderr.String())
		}
	}
}
