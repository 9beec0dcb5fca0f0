package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// HTTP prober bounds.
const (
	// httpProbeCustomer has its own budget, outside the load's customers
	// (whose histories the linearizability check reads).
	httpProbeCustomer = "http-probe"
	httpProbeLimit    = 1_000_000
	httpProbeEvery    = 20 * time.Millisecond
	// httpProbeTimeout bounds one HTTP call: the gateway's own bound
	// (httpapi.HandlerTimeout, 15 s) and a margin.
	httpProbeTimeout = 20 * time.Second
)

// httpProber sends preflights through every service's HTTP gateway, one
// caller each, as an SDK would, and counts what came back. A gateway whose
// process is killed resets or refuses its connections; a gateway that
// answers must answer 200, even while the writer fails over (it retries
// with the same idempotency key meanwhile).
type httpProber struct {
	mu                sync.Mutex
	ok, refused, down int
	bads              []string      // what live gateways answered that was not a 200, and calls that timed out
	slowest           time.Duration // the longest answered call: one that rode through a failover
	stop              chan struct{}
	wg                sync.WaitGroup
}

// createKey makes an API key with `agentbill keys create`.
func createKey(t *testing.T, urls, role string) string {
	t.Helper()
	bin, _ := binaries(t)
	out, err := exec.Command(bin, "keys", "create", "--role", role, "--json", "--nats-url", urls).Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(out, &k); err != nil || k.Key == "" {
		t.Fatalf("keys create printed %q: %v", out, err)
	}
	return k.Key
}

func startHTTPProber(t *testing.T, l *load, bases []string, key string) *httpProber {
	t.Helper()
	limit := events.NewUnits(httpProbeLimit, 0)
	ctx, cancel := context.WithTimeout(context.Background(), stableTimeout)
	defer cancel()
	if _, err := l.admin.SetBudget(ctx, httpProbeCustomer, ledger.BudgetRequest{Limit: &limit, Period: string(ledger.PeriodMonth)}); err != nil {
		t.Fatalf("set the probe's budget: %v", err)
	}
	p := &httpProber{stop: make(chan struct{})}
	hc := &http.Client{Timeout: httpProbeTimeout}
	for g, base := range bases { // one caller per gateway
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-p.stop:
					return
				case <-time.After(httpProbeEvery):
				}
				p.probe(hc, base, key, fmt.Sprintf("%d-%d", g, i))
			}
		}()
	}
	return p
}

func (p *httpProber) probe(hc *http.Client, base, key, id string) {
	body := fmt.Sprintf(`{"customer_id":%q,"agent_id":"http","estimated_units":1,"idempotency_key":"http-%s"}`, httpProbeCustomer, id)
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/preflight", bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := hc.Do(req)
	took := time.Since(start)
	p.mu.Lock()
	defer p.mu.Unlock()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// No answer within the bound: the gateway took the request and
		// hung, which a killed process does not do (its connections are
		// reset or refused).
		p.bads = append(p.bads, fmt.Sprintf("%s: no answer within %s: %v", base, httpProbeTimeout, err))
		return
	}
	if err != nil {
		// No HTTP answer at all: the connection was refused or reset,
		// which is what a killed process does. A live gateway answers
		// every request it accepted.
		p.down++
		return
	}
	defer resp.Body.Close()
	var r struct {
		Approved bool `json:"approved"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil {
		p.bads = append(p.bads, fmt.Sprintf("%s: HTTP %d", base, resp.StatusCode))
		return
	}
	p.slowest = max(p.slowest, took)
	if r.Approved {
		p.ok++
	} else {
		p.refused++
	}
}

// finish stops the prober and fails the test if a live gateway answered
// anything but 200.
func (p *httpProber) finish(t *testing.T) {
	t.Helper()
	close(p.stop)
	p.wg.Wait()
	t.Logf("http: %d approved, %d refused, %d to a dead gateway, %d failed; slowest answer %s",
		p.ok, p.refused, p.down, len(p.bads), p.slowest.Round(time.Millisecond))
	if len(p.bads) > 0 {
		t.Errorf("%d HTTP preflights to a live gateway failed, first: %s", len(p.bads), p.bads[0])
	}
	if p.ok == 0 {
		t.Error("no HTTP preflight was approved")
	}
}
