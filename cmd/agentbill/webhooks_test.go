package main_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/webhooks"
)

// TestWebhooksCLI: add refuses a private URL without --allow-private; a
// receiver that answers 500 twice and then 200 gets each alert exactly
// once, signed; list shows the pending count, last success and last
// error and never the secret; test and remove work, as the local admin.
func TestWebhooksCLI(t *testing.T) {
	s := serve(t, t.TempDir(), testenv.FreePort(t), "--webhook-backoff-min", "50ms", "--webhook-backoff-max", "400ms")

	var mu sync.Mutex
	var secret string
	var accepted, tests []string
	reqs := 0
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := make([]byte, 64*1024)
		n, _ := r.Body.Read(body)
		mu.Lock()
		defer mu.Unlock()
		if reqs++; reqs <= 2 {
			w.WriteHeader(500)
			return
		}
		if err := webhooks.Verify(body[:n], r.Header, secret, time.Now()); err != nil {
			t.Errorf("delivery does not verify: %v", err)
		}
		if strings.HasPrefix(r.Header.Get(webhooks.HeaderID), "test_") {
			tests = append(tests, r.Header.Get(webhooks.HeaderID))
		} else {
			accepted = append(accepted, r.Header.Get(webhooks.HeaderID))
		}
	}))
	defer rcv.Close()

	out := s.must(t, 1, "webhooks", "add", "--url", rcv.URL+"/hook")
	if !strings.Contains(out, "resolves to 127.0.0.1, a loopback address: refused (pass --allow-private") {
		t.Fatalf("private URL: %s", out)
	}
	s.must(t, 2, "webhooks", "add")
	s.must(t, 2, "webhooks", "add", "--url", rcv.URL, "--types", "spent")
	s.must(t, 1, "webhooks", "remove", "nope")

	var ep webhooks.Endpoint
	if err := json.Unmarshal([]byte(s.must(t, 0, "webhooks", "add", "--url", rcv.URL+"/hook", "--allow-private", "--json")), &ep); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = ep.Secret
	mu.Unlock()
	if !strings.HasPrefix(ep.Secret, webhooks.SecretPrefix) {
		t.Fatalf("add --json: secret %q", ep.Secret)
	}

	s.must(t, 0, "budget", "set", "--customer", "c1", "--limit", "10", "--period", "month")
	s.must(t, 3, "preflight", "--customer", "c1", "--agent", "a", "--units", "100")
	s.must(t, 3, "preflight", "--customer", "c1", "--agent", "a", "--units", "100")
	deadline := time.Now().Add(ProcessTimeout)
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 3 { // denied, budget_exhausted, denied
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries accepted:\n%s", n, s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var list []struct {
		ID      string
		Secret  string
		Pending *uint64
		Status  webhooks.Status
	}
	for deadline := time.Now().Add(ProcessTimeout); ; time.Sleep(100 * time.Millisecond) {
		if err := json.Unmarshal([]byte(s.must(t, 0, "webhooks", "list", "--json")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 && list[0].Status.LastSuccessAt != nil || time.Now().After(deadline) {
			break
		}
	}
	if len(list) != 1 || list[0].ID != ep.ID || list[0].Secret != "" || list[0].Pending == nil || *list[0].Pending != 0 ||
		list[0].Status.LastSuccessAt == nil || !strings.Contains(list[0].Status.LastError, "HTTP 500") {
		t.Fatalf("list: %+v", list)
	}
	table := s.must(t, 0, "webhooks", "list")
	if strings.Contains(table, ep.Secret) || !strings.Contains(table, ep.ID) || !strings.Contains(table, "HTTP 500") {
		t.Fatalf("list table:\n%s", table)
	}

	if out := s.must(t, 0, "webhooks", "test", ep.ID); !strings.Contains(out, "accepted test event test_") {
		t.Fatalf("test: %s", out)
	}
	s.must(t, 0, "webhooks", "remove", ep.ID)
	if out := s.must(t, 0, "webhooks", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after remove: %s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != 3 || len(tests) != 1 {
		t.Fatalf("accepted %v and tests %v; want 3 alerts once each and one test", accepted, tests)
	}
	seen := map[string]bool{}
	for _, id := range accepted {
		if seen[id] {
			t.Fatalf("%s accepted twice", id)
		}
		seen[id] = true
	}
}
