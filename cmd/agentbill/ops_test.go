package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
)

// watcher is `agentbill watch` running as a process, its stdout read line
// by line.
type watcher struct {
	lines chan string
}

func (s *service) watch(t *testing.T, args ...string) *watcher {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"watch"}, args...)...)
	cmd.Env = s.env()
	return startWatch(t, cmd)
}

// startWatch starts cmd, an `agentbill watch`, and reads its stdout.
func startWatch(t *testing.T, cmd *exec.Cmd) *watcher {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	w := &watcher{lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
	}()
	return w
}

// next returns the next line that contains want, failing after
// ProcessTimeout.
func (w *watcher) next(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(ProcessTimeout)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				t.Fatalf("watch ended before printing %q", want)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			t.Fatalf("watch printed no line with %q within %s", want, ProcessTimeout)
		}
	}
}

// poll is whether a watcher has printed a line with want yet.
func (w *watcher) poll(want string) bool {
	for {
		select {
		case l := <-w.lines:
			if strings.Contains(l, want) {
				return true
			}
		default:
			return false
		}
	}
}

// TestWatch runs `agentbill watch` twice, as text to a pipe (so without
// colour) and as JSON lines, and sees an exhaustion on both.
func TestWatch(t *testing.T) {
	s := serve(t, t.TempDir(), testenv.FreePort(t), "--default-budget", "none")
	text := s.watch(t, "--denied")
	jsonl := s.watch(t, "--json", "--denied")
	// A watcher sees what is committed after it subscribed: refuse a
	// customer with no budget until both have seen a refusal.
	deadline := time.Now().Add(ProcessTimeout)
	for seenText, seenJSON := false, false; !seenText || !seenJSON; {
		if time.Now().After(deadline) {
			t.Fatalf("watchers saw no refusal (text %v, json %v)", seenText, seenJSON)
		}
		s.must(t, 3, "preflight", "--customer", "nobody", "--agent", "a", "--units", "1")
		seenText = seenText || text.poll("denied")
		seenJSON = seenJSON || jsonl.poll(`"denied"`)
		time.Sleep(100 * time.Millisecond)
	}
	s.must(t, 0, "budget", "set", "--customer", "user_123", "--limit", "10", "--period", "month")
	s.must(t, 0, "preflight", "--customer", "user_123", "--agent", "a", "--units", "10")

	line := text.next(t, "budget_exhausted")
	if !strings.Contains(line, "user_123: 0 used, 10 reserved of 10, 0 left (remaining_zero)") || strings.Contains(line, "\x1b") {
		t.Errorf("text line %q: want the numbers and no colour on a pipe", line)
	}
	var e struct {
		Type       string `json:"type"`
		CustomerID string `json:"customer_id"`
		Data       struct {
			Trigger string `json:"trigger"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(jsonl.next(t, "budget_exhausted")), &e); err != nil ||
		e.Type != "budget_exhausted" || e.CustomerID != "user_123" || e.Data.Trigger != "remaining_zero" {
		t.Errorf("json line: %+v, %v", e, err)
	}
}

// TestServeOperability checks what serve --http adds for operators: the
// probes, /metrics with the writer's figures, and the dashboard behind
// its sign-in.
func TestServeOperability(t *testing.T) {
	httpPort := testenv.FreePort(t)
	s := serve(t, t.TempDir(), testenv.FreePort(t), "--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--log-format", "json")
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	waitHTTP(t, s, base)
	get := func(path string) (int, string) {
		t.Helper()
		res, err := (&http.Client{Timeout: ProcessTimeout}).Get(base + path)
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
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"role":"leader"`) {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	s.must(t, 0, "budget", "set", "--customer", "user_123", "--limit", "10", "--period", "month")
	code, body := get("/metrics")
	for _, want := range []string{`agentbill_writer_role{role="leader"} 1`, "agentbill_customers 1", "go_goroutines"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	if code, body := get("/"); code != 401 || !strings.Contains(body, "Sign in") {
		t.Errorf("/ without a key: %d, want 401 and the sign-in form", code)
	}
	if st := httpStatus(t, "GET", base+"/ui/api/customers", createKey(t, s, "--role", "auditor"), ""); st != 200 {
		t.Errorf("the dashboard's table with an auditor key: %d, want 200", st)
	}
	for _, l := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("--log-format json wrote a line that is not JSON: %q", l)
		}
	}
	if !strings.Contains(s.stderr.String(), `"msg":"dashboard started"`) {
		t.Errorf("no dashboard start line in the log:\n%s", s.stderr.String())
	}
}
