package webhooks_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentbill/agentbill/webhooks"
)

// The Standard Webhooks specification's example (also the reference
// libraries' test vector).
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesTheSpecVector(t *testing.T) {
	key, err := webhooks.DecodeSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := webhooks.Sign(key, vectorID, vectorTS, []byte(vectorBody)); got != vectorSig {
		t.Fatalf("got %s, want %s", got, vectorSig)
	}
}

func TestVerify(t *testing.T) {
	at := time.Unix(vectorTS, 0)
	h := http.Header{}
	h.Set(webhooks.HeaderID, vectorID)
	h.Set(webhooks.HeaderTimestamp, strconv.Itoa(vectorTS))
	h.Set(webhooks.HeaderSignature, "v1,bm90IHRoaXMgb25l "+vectorSig) // rotation: any one matches
	other, _ := webhooks.NewSecret()
	for _, c := range []struct {
		name   string
		body   string
		secret string
		now    time.Time
		want   error
	}{
		{"valid", vectorBody, vectorSecret, at, nil},
		{"valid at the tolerance", vectorBody, vectorSecret, at.Add(webhooks.TimestampTolerance), nil},
		{"body changed", vectorBody + " ", vectorSecret, at, webhooks.ErrSignature},
		{"other secret", vectorBody, other, at, webhooks.ErrSignature},
		{"too old", vectorBody, vectorSecret, at.Add(webhooks.TimestampTolerance + time.Second), webhooks.ErrTimestamp},
		{"from the future", vectorBody, vectorSecret, at.Add(-webhooks.TimestampTolerance - time.Second), webhooks.ErrTimestamp},
		{"not a secret", vectorBody, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", at, webhooks.ErrInvalid},
	} {
		err := webhooks.Verify([]byte(c.body), h, c.secret, c.now)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestBlocked(t *testing.T) {
	for _, c := range []struct {
		ip      string
		blocked bool
	}{
		{"127.0.0.1", true}, {"127.9.9.9", true}, {"::1", true}, {"::ffff:127.0.0.1", true},
		{"10.1.2.3", true}, {"172.16.0.1", true}, {"192.168.1.1", true}, {"fd00::1", true},
		{"169.254.169.254", true}, {"fe80::1", true}, {"0.0.0.0", true}, {"::", true},
		{"100.64.0.1", true}, {"224.0.0.1", true}, {"255.255.255.255", true}, {"64:ff9b::a00:1", true},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"2606:4700:4700::1111", false}, {"64:ff9b::808:808", false},
	} {
		kind, got := webhooks.Blocked(netip.MustParseAddr(c.ip))
		if got != c.blocked {
			t.Errorf("%s: blocked %v (%s), want %v", c.ip, got, kind, c.blocked)
		}
	}
}

// fakeResolver answers every name with its addresses, never the network.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("no such host %s", host)
}

func TestCheckURL(t *testing.T) {
	r := fakeResolver{
		"hooks.example.com": {netip.MustParseAddr("93.184.215.14")},
		"rebind.example":    {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.0.0.7")},
		"localhost":         {netip.MustParseAddr("127.0.0.1")},
	}
	for _, c := range []struct {
		url     string
		private bool
		want    error
	}{
		{"https://hooks.example.com/agentbill", false, nil},
		{"http://127.0.0.1:8080/hook", false, webhooks.ErrPrivateAddress},
		{"http://127.0.0.1:8080/hook", true, nil},
		{"http://localhost/hook", false, webhooks.ErrPrivateAddress},
		{"https://rebind.example/", false, webhooks.ErrPrivateAddress},
		{"http://[::1]/", false, webhooks.ErrPrivateAddress},
		{"http://169.254.169.254/latest/meta-data", false, webhooks.ErrPrivateAddress},
		{"https://10.0.0.1/", false, webhooks.ErrPrivateAddress},
		{"ftp://hooks.example.com/", false, webhooks.ErrInvalid},
		{"https://user:pw@hooks.example.com/", false, webhooks.ErrInvalid},
		{"https:///nohost", false, webhooks.ErrInvalid},
		{"https://unknown.example/", false, webhooks.ErrInvalid},
		{"https://hooks.example.com/" + strings.Repeat("a", webhooks.URLBytesMax), false, webhooks.ErrInvalid},
	} {
		_, err := webhooks.CheckURL(context.Background(), c.url, c.private, r)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%.60s (allow private %v): got %v, want %v", c.url, c.private, err, c.want)
		}
	}
}

// TestDialGuard: an endpoint without AllowPrivate whose URL names a
// loopback address (as a rebound name would resolve) is refused at
// connect time: the receiver sees nothing.
func TestDialGuard(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	secret, _ := webhooks.NewSecret()
	s := webhooks.NewSender(time.Second, nil)
	defer s.Close()
	_, a, err := webhooks.SendTest(context.Background(), s, &webhooks.Endpoint{ID: "ep_00000000000000000000", URL: srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if a.Outcome != webhooks.OutcomeBlocked || !errors.Is(a.Err, webhooks.ErrPrivateAddress) || hits.Load() != 0 {
		t.Fatalf("got %s %v with %d hits; want blocked, ErrPrivateAddress, no hit", a.Outcome, a.Err, hits.Load())
	}
	_, a, _ = webhooks.SendTest(context.Background(), s, &webhooks.Endpoint{ID: "ep_00000000000000000000", URL: srv.URL, Secret: secret, AllowPrivate: true})
	if a.Outcome != webhooks.OutcomeDelivered || hits.Load() != 1 {
		t.Fatalf("allowed: got %s %v with %d hits; want delivered once", a.Outcome, a.Err, hits.Load())
	}
}

// TestSenderOutcomes: redirects are not followed, 410 is gone, a big
// response body is read only up to the cap, a slow receiver times out.
func TestSenderOutcomes(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/target", http.StatusFound) })
	mux.HandleFunc("/target", func(http.ResponseWriter, *http.Request) { followed.Add(1) })
	mux.HandleFunc("/gone", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(500)
		chunk := []byte(strings.Repeat("x", 64*1024))
		for range 160 { // 10 MiB, unless the sender stops reading
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/slow", func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	secret, _ := webhooks.NewSecret()
	s := webhooks.NewSender(300*time.Millisecond, nil)
	defer s.Close()
	for _, c := range []struct {
		path    string
		outcome string
		status  int
	}{
		{"/redirect", webhooks.OutcomeFailed, 302},
		{"/gone", webhooks.OutcomeGone, 410},
		{"/big", webhooks.OutcomeFailed, 500},
		{"/slow", webhooks.OutcomeFailed, 0},
	} {
		ep := &webhooks.Endpoint{ID: "ep_00000000000000000000", URL: srv.URL + c.path, Secret: secret, AllowPrivate: true}
		_, a, _ := webhooks.SendTest(context.Background(), s, ep)
		if a.Outcome != c.outcome || a.Status != c.status {
			t.Errorf("%s: got %s %d (%v), want %s %d", c.path, a.Outcome, a.Status, a.Err, c.outcome, c.status)
		}
		if a.Took > 2*time.Second {
			t.Errorf("%s took %s", c.path, a.Took)
		}
	}
	if followed.Load() != 0 {
		t.Errorf("a redirect was followed")
	}
}

func TestScheduleDelay(t *testing.T) {
	s := webhooks.Schedule{Min: time.Second, Max: time.Minute, MaxAge: time.Hour}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for attempt, step := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 7: time.Minute, 1000: time.Minute} {
		lo, hi := s.Delay(attempt, func() float64 { return 0 }), s.Delay(attempt, func() float64 { return 0.999999 })
		if lo != step/2 || hi > step || hi < step*99/100 {
			t.Errorf("attempt %d: delays %s..%s, want %s..%s", attempt, lo, hi, step/2, step)
		}
	}
	bad := webhooks.Schedule{Min: time.Millisecond, Max: 0, MaxAge: 30 * 24 * time.Hour}
	if err := bad.Validate(); err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("Validate: got %v, want three problems", err)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
