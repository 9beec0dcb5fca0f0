package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
)

// waitHTTP polls the gateway's /healthz until it answers 200.
func waitHTTP(t *testing.T, s *service, base string) {
	t.Helper()
	deadline := time.Now().Add(ProcessTimeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		res, err := hc.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not answer on %s:\n%s", base, s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpStatus(t *testing.T, method, url, key, body string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestKeysAndHTTPGateway(t *testing.T) {
	httpPort := testenv.FreePort(t)
	s := serve(t, t.TempDir(), testenv.FreePort(t), "--http", fmt.Sprintf("127.0.0.1:%d", httpPort))
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	waitHTTP(t, s, base)

	// Deny by default: with no key at all, nothing is served.
	if st := httpStatus(t, "GET", base+"/v1/budget?customer_id=c1", "", ""); st != 401 {
		t.Fatalf("no key: %d, want 401", st)
	}

	s.must(t, 2, "keys", "create")
	s.must(t, 2, "keys", "create", "--role")
	s.must(t, 1, "keys", "create", "--role", "root")
	s.must(t, 2, "keys", "rotate")
	s.must(t, 2, "keys", "revoke")

	var admin, agent struct {
		Key, ID, Prefix, Role string
		CustomerID            string `json:"customer_id"`
	}
	if err := json.Unmarshal([]byte(s.must(t, 0, "keys", "create", "--role", "admin", "--json")), &admin); err != nil {
		t.Fatal(err)
	}
	out := s.must(t, 0, "keys", "create", "--role", "agent", "--customer", "c1", "--name", "worker", "--json")
	if err := json.Unmarshal([]byte(out), &agent); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(agent.Key, "agb_") || agent.Role != "agent" || agent.CustomerID != "c1" || !strings.HasPrefix(agent.Key, agent.Prefix) {
		t.Fatalf("keys create --json: %s", out)
	}
	text := s.must(t, 0, "keys", "create", "--role", "auditor")
	if !strings.Contains(text, "agb_") || !strings.Contains(text, "only time") {
		t.Fatalf("keys create: %s", text)
	}

	list := s.must(t, 0, "keys", "list", "--json")
	var keys []map[string]any
	if err := json.Unmarshal([]byte(list), &keys); err != nil || len(keys) != 3 {
		t.Fatalf("keys list --json: %s (%v)", list, err)
	}
	table := s.must(t, 0, "keys", "list")
	for _, secret := range []string{admin.Key, agent.Key} {
		if strings.Contains(list, secret[4:]) || strings.Contains(table, secret[4:]) {
			t.Fatal("keys list shows a key")
		}
	}
	if !strings.Contains(table, agent.ID) || !strings.Contains(table, agent.Prefix) || !strings.Contains(table, "worker") {
		t.Fatalf("keys list:\n%s", table)
	}

	budget := `{"customer_id":"c1","limit_units":100,"period":"month"}`
	if st := httpStatus(t, "PUT", base+"/v1/budget", agent.Key, budget); st != 403 {
		t.Fatalf("agent sets a budget: %d, want 403", st)
	}
	if st := httpStatus(t, "PUT", base+"/v1/budget", admin.Key, budget); st != 200 {
		t.Fatalf("admin sets a budget: %d", st)
	}
	if st := httpStatus(t, "POST", base+"/v1/preflight", agent.Key, `{"agent_id":"a","estimated_units":5}`); st != 200 {
		t.Fatalf("agent preflight: %d", st)
	}
	s.must(t, 0, "keys", "revoke", agent.ID)
	if st := httpStatus(t, "POST", base+"/v1/preflight", agent.Key, `{"agent_id":"a","estimated_units":5}`); st != 401 {
		t.Fatalf("revoked key: %d, want 401", st)
	}
	s.must(t, 1, "keys", "revoke", "0123456789abcdef")
	s.must(t, 1, "keys", "revoke", "not-an-id")
	// Only the revoked key shows a revocation time, in both listings.
	var after []struct {
		ID        string     `json:"id"`
		RevokedAt *time.Time `json:"revoked_at"`
	}
	list = s.must(t, 0, "keys", "list", "--json")
	if err := json.Unmarshal([]byte(list), &after); err != nil || len(after) != 3 {
		t.Fatalf("keys list --json after revoke: %s (%v)", list, err)
	}
	for _, k := range after {
		if got, want := k.RevokedAt != nil, k.ID == agent.ID; got != want {
			t.Fatalf("keys list --json after revoke: key %s revoked %v, want %v\n%s", k.ID, got, want, list)
		}
		if k.ID != agent.ID {
			continue
		}
		if d := time.Since(*k.RevokedAt); d < -time.Minute || d > time.Hour {
			t.Fatalf("key %s revoked_at %s, want about now", k.ID, k.RevokedAt)
		}
		revoked := s.must(t, 0, "keys", "list")
		if !strings.Contains(revoked, time.Now().UTC().Format("2006-01-02")) || !strings.Contains(revoked, k.RevokedAt.Format(time.RFC3339)) {
			t.Fatalf("keys list after revoke, want %s's revocation at %s:\n%s", k.ID, k.RevokedAt.Format(time.RFC3339), revoked)
		}
	}

	// A clean stop takes the gateway down with the writer.
	s.stop(t)
}

// Bad serve and keys flags are usage errors (exit 2) that name the flag,
// before anything connects.
func TestBadFlagsAreUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"serve", "--default-budget", "lots"}, "--default-budget"},
		{[]string{"serve", "--default-budget", "10/year"}, "--default-budget"},
		{[]string{"serve", "--replicas", "2"}, "--replicas"},
		{[]string{"serve", "--nats-url", "nats://127.0.0.1:1", "--nats-config", "x.conf"}, "--nats-config"},
		{[]string{"serve", "--http", "8080"}, "--http"},
		{[]string{"serve", "--http", "127.0.0.1:http-alt:1"}, "--http"},
		{[]string{"serve", "--http", "127.0.0.1:70000"}, "--http"},
		{[]string{"keys", "list", "--replicas", "2"}, "--replicas"},
		{[]string{"serve", "--partitions", "0"}, "--partitions"},
		{[]string{"serve", "--partitions", "4", "--partition", "4"}, "--partition"},
		{[]string{"serve", "--lease-ttl", "10ms"}, "--lease-ttl"},
		{[]string{"serve", "--snapshot-every", "999"}, "--snapshot-every"},
		{[]string{"serve", "--snapshot-interval", "10ms"}, "--snapshot-interval"},
		{[]string{"serve", "--instance", ""}, "--instance"},
		{[]string{"serve", "--commits-in-flight", "0"}, "--commits-in-flight"},
		{[]string{"serve", "--partitions", "2", "--commits-in-flight", "4"}, "--commits-in-flight"},
		{[]string{"serve", "--log-format", "xml"}, "--log-format"},
		{[]string{"serve", "--rate-limit-per-second", "fast"}, "--rate-limit-per-second"},
		{[]string{"serve", "--rate-limit-per-second", "200000"}, "--rate-limit-per-second"},
		{[]string{"serve", "--rate-limit-burst", "0"}, "--rate-limit-burst"},
		{[]string{"serve", "--http-rate-limit-per-second", "-1"}, "--http-rate-limit-per-second"},
		{[]string{"serve", "--http-rate-limit-burst", "100001"}, "--http-rate-limit-burst"},
	} {
		out, err := exec.Command(binary, c.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), c.flag) {
			t.Errorf("%v: %v, want exit 2 naming %s\n%s", c.args, err, c.flag, out)
		}
	}
}
