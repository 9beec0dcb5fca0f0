package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/internal/testing/testenv"
)

// walkthroughEnv is the environment of a user following the README: no
// NATS credential and no data directory set, only the URL (the test's
// free port in place of 4222).
func walkthroughEnv(url string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AGENTBILL_NATS_") && !strings.HasPrefix(kv, "AGENTBILL_DATA=") {
			env = append(env, kv)
		}
	}
	return append(env, "AGENTBILL_NATS_URL="+url)
}

// user runs the CLI in a working directory, as the README's reader in a
// second terminal.
type user struct {
	dir string
	env []string
}

// must runs `agentbill args...` and fails unless it exits with want; it
// returns stdout and stderr.
func (u user) must(t *testing.T, want int, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir, cmd.Env = u.dir, u.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != want {
		t.Fatalf("agentbill %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out.String())
	}
	return out.String()
}

func wantIn(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// TestReadmeWalkthrough runs README's "Five-minute walkthrough" and then
// its HTTP example ("Ways in"; docs/http.md) verbatim from one working directory: `serve`
// with the default --data (./data), and every other command from the same
// directory with no credential, as the local admin serve wrote there. Only
// the ports differ, so tests can run side by side.
func TestReadmeWalkthrough(t *testing.T) {
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	u := user{dir: dir, env: walkthroughEnv("nats://" + addr)}
	cmd, stderr := startServeIn(t, dir, u.env, nil, "--nats-listen", addr)
	seed := filepath.Join(dir, "data", "admin.nkey")
	fi, err := os.Stat(seed)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("serve's admin credential %s: %v, %v; want mode 0600", seed, fi, err)
	}

	u.must(t, 0, "budget", "set", "--customer", "user_123", "--limit", "100", "--period", "month",
		"--threshold", "0.8", "--upgrade-url", "https://example.com/upgrade")
	watchCmd := exec.Command(binary, "watch")
	watchCmd.Dir, watchCmd.Env = dir, u.env
	watch := startWatch(t, watchCmd)
	watch.next(t, "watching for")
	wantIn(t, "preflight", u.must(t, 0, "preflight", "--customer", "user_123", "--agent", "research_agent", "--units", "60"),
		"approved", "40 left")
	wantIn(t, "record", u.must(t, 0, "record", "--customer", "user_123", "--agent", "research_agent", "--units", "55"),
		"charged 55, released 5", "45 left")
	refused := u.must(t, 3, "preflight", "--customer", "user_123", "--agent", "research_agent", "--units", "50")
	wantIn(t, "refused preflight", refused,
		"refused (budget_exhausted): customer user_123 has 45 units left in this month; 50 requested\n",
		"upgrade: https://example.com/upgrade\n")
	wantIn(t, "watch", watch.next(t, "budget_exhausted"), "user_123")
	wantIn(t, "status", u.must(t, 0, "status", "--customer", "user_123"),
		"limit      100", "used       55", "remaining  45", "research_agent: used 55")

	// The commands of docs/http.md and docs/audit.md, from the same directory.
	wantIn(t, "keys create", u.must(t, 0, "keys", "create", "--role", "admin"), "agb_", "role admin")
	wantIn(t, "audit", u.must(t, 0, "audit", "--customer", "user_123"), "budget_set", "reserved", "recorded", "denied", "budget_exhausted")
	wantIn(t, "audit verify", u.must(t, 0, "audit", "verify"), "chain intact: 4 commits from 1 writer(s)")
	wantIn(t, "replay", u.must(t, 0, "replay", "--customer", "user_123"), "user_123", "45")
	wantIn(t, "replay --verify", u.must(t, 0, "replay", "--verify"), "1 customers, 1 compared, 0 differ")

	// The HTTP gateway section: `serve --http`, restarted in the same
	// directory, reuses the credential it wrote.
	before, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	(&service{cmd: cmd, stderr: stderr}).stop(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cmd, stderr = startServeIn(t, dir, u.env, nil, "--nats-listen", addr, "--http", httpAddr)
	base := "http://" + httpAddr
	waitHTTP(t, &service{cmd: cmd, stderr: stderr}, base)
	if after, err := os.ReadFile(seed); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("serve's second start changed the admin credential (%v)", err)
	}
	admin := keyOf(t, u.must(t, 0, "keys", "create", "--role", "admin"))
	agent := keyOf(t, u.must(t, 0, "keys", "create", "--role", "agent", "--customer", "user_123"))
	if code, body := curl(t, "PUT", base+"/v1/budget", admin,
		`{"customer_id":"user_123","limit_units":100,"period":"month"}`); code != 200 {
		t.Fatalf("PUT /v1/budget as admin: %d %s", code, body)
	}
	if code, body := curl(t, "POST", base+"/v1/preflight", agent,
		`{"customer_id":"user_123","agent_id":"research_agent","estimated_units":10}`); code != 200 || !strings.Contains(body, `"approved":true`) {
		t.Fatalf("POST /v1/preflight as agent: %d %s", code, body)
	}
	if code, body := curl(t, "POST", base+"/v1/events", agent,
		`{"customer_id":"user_123","event_type":"research_agent","units":7.5}`); code != 200 {
		t.Fatalf("POST /v1/events as agent: %d %s", code, body)
	}
	code, body := curl(t, "GET", base+"/v1/budget?customer_id=user_123", agent, "")
	var b struct {
		Used json.Number `json:"used_units"`
	}
	if err := json.Unmarshal([]byte(body), &b); code != 200 || err != nil || b.Used != "62.5" {
		t.Fatalf("GET /v1/budget: %d %s (%v), want used_units 62.5", code, body, err)
	}
}

// keyOf is the agb_ key `keys create` printed.
func keyOf(t *testing.T, out string) string {
	t.Helper()
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "agb_") {
			return f
		}
	}
	t.Fatalf("keys create printed no key:\n%s", out)
	return ""
}

// curl sends one request with a bearer key, as the README's curl lines.
func curl(t *testing.T, method, url, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := (&http.Client{Timeout: ProcessTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}
