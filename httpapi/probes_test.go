package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/projections"
)

// TestReadyz: ready while the writer leads, not ready (503, with the role
// and Retry-After) once it stopped or when nothing reports a role; healthz
// answers regardless.
func TestReadyz(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("GET", "/readyz", "", nil)
	if r.status != http.StatusServiceUnavailable || r.body["role"] != "unknown" || r.body["ready"] != false {
		t.Fatalf("no role reported: got %d %s, want 503 with role unknown", r.status, r.raw)
	}
	gw, err := New(Config{Conn: testenv.Connect(t, e.srv), Keys: e.store, Role: e.writer.Role})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)
	e.http = hs
	r = e.do("GET", "/readyz", "", nil)
	if r.status != http.StatusOK || r.body["role"] != projections.RoleLeader || r.body["ready"] != true || r.body["nats"] != true {
		t.Fatalf("leader: got %d %s, want 200 ready leader", r.status, r.raw)
	}
	e.writer.Stop(t)
	r = e.do("GET", "/readyz", "", nil)
	if r.status != http.StatusServiceUnavailable || r.body["role"] != projections.RoleStopped || r.header.Get("Retry-After") != "1" {
		t.Fatalf("stopped: got %d %s (Retry-After %q), want 503 with role stopped", r.status, r.raw, r.header.Get("Retry-After"))
	}
	expect(t, e.do("GET", "/healthz", "", nil), 200, "")
	expect(t, e.do("POST", "/readyz", "", nil), 400, "invalid_argument")
}

// TestMountedHandlers: /metrics and the dashboard's paths reach their
// handlers only when configured; other paths stay the gateway's 404.
func TestMountedHandlers(t *testing.T) {
	e := newEnv(t, nil)
	expect(t, e.do("GET", "/metrics", "", nil), 404, "not_found")
	expect(t, e.do("GET", "/", "", nil), 404, "not_found")
	mark := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(name + " " + r.URL.Path)) })
	}
	gw, err := New(Config{Conn: testenv.Connect(t, e.srv), Keys: e.store, Metrics: mark("metrics"), Dashboard: mark("dashboard")})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)
	e.http = hs
	for path, want := range map[string]string{
		"/metrics": "metrics /metrics", "/": "dashboard /", DashboardPrefix + "api/customers": "dashboard /ui/api/customers",
	} {
		res, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || string(b) != want {
			t.Errorf("GET %s: got %d %q (%v), want %q", path, res.StatusCode, b, err, want)
		}
	}
	expect(t, e.do("GET", "/elsewhere", "", nil), 404, "not_found")
}
