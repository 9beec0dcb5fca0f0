package crashtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Process bounds.
const (
	// startTimeout bounds a process becoming ready (a JetStream cluster
	// electing its meta leader takes 2-7 s).
	startTimeout = 30 * time.Second
	// stopTimeout bounds a process exiting after a signal.
	stopTimeout = 15 * time.Second
	// logTailLines is how much of a process's output a failure shows.
	logTailLines = 40
	// dumpTimeout bounds a process writing its goroutines (SIGQUIT)
	// after ignoring a stop; dumpBytesMax bounds how much of that the
	// failure shows.
	dumpTimeout  = 5 * time.Second
	dumpBytesMax = 256 << 10
)

// binaries returns the agentbill and nats-server binaries: prebuilt ones
// named by the environment (scripts/test.sh builds both), otherwise built
// once for the package (testenv.Binary).
func binaries(t *testing.T) (agentbill, natsServer string) {
	t.Helper()
	return testenv.Binary(t, testenv.AgentBillBinEnv, testenv.AgentBillPkg),
		testenv.Binary(t, testenv.NATSServerBinEnv, testenv.NATSServerPkg)
}

// proc is one subprocess, restartable with the same command line.
type proc struct {
	name string
	bin  string
	args []string
	log  string // output file

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "==== %s start %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// signal sends sig and waits for the process to exit.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		t.Errorf("%s ignored %v for %s; its goroutines then:\n%s", p.name, sig, stopTimeout, p.goroutines())
	}
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
}

// goroutines ends the process with SIGQUIT, on which a Go process writes
// every goroutine's stack (where it hangs), and returns what it wrote;
// for a failure's message.
func (p *proc) goroutines() string {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return "(not running)"
	}
	mark := p.size()
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-done:
	case <-time.After(dumpTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
	return p.since(mark)
}

// pause stops the process (SIGSTOP) without ending it, as a long GC pause,
// a frozen VM or a stalled disk would; resume lets it run on (SIGCONT).
func (p *proc) pause(t *testing.T)  { p.raw(t, syscall.SIGSTOP) }
func (p *proc) resume(t *testing.T) { p.raw(t, syscall.SIGCONT) }

func (p *proc) raw(t *testing.T, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		t.Fatalf("%s is not running", p.name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", p.name, sig, err)
	}
}

// kill is kill -9: no shutdown, no flush, nothing released.
func (p *proc) kill(t *testing.T) { p.signal(t, syscall.SIGKILL) }

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// size returns the length of the process's output so far.
func (p *proc) size() int64 {
	fi, err := os.Stat(p.log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// since returns the process's output after offset, at most dumpBytesMax
// of it.
func (p *proc) since(offset int64) string {
	b, _ := os.ReadFile(p.log)
	b = b[min(offset, int64(len(b))):]
	if len(b) > dumpBytesMax {
		return string(b[:dumpBytesMax]) + "\n[cut]"
	}
	return string(b)
}

// tail returns the last lines of the process's output.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-logTailLines):], "\n")
}

// node is one nats-server: JetStream, file storage, fsync before every
// ack, and a cluster block when it is one of several.
type node struct {
	proc
	port int
}

// cluster is one or three nats-server processes on loopback.
type cluster struct {
	nodes []*node
	dir   string // the nodes' stores and logs, and the services' data
}

func (c *cluster) urls() string {
	u := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		u[i] = fmt.Sprintf("nats://127.0.0.1:%d", n.port)
	}
	return strings.Join(u, ",")
}

// startCluster starts n nats-servers (1, or 3 for R3) and waits until
// JetStream answers.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	_, natsBin := binaries(t)
	dir := t.TempDir()
	c := &cluster{dir: dir}
	routes := make([]string, n)
	cports := make([]int, n)
	for i := range n {
		cports[i] = testenv.FreePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", cports[i])
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		nd := &node{port: testenv.FreePort(t)}
		conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\nmax_payload: 1MB\n"+
			"jetstream { store_dir: %q, sync_interval: always }\n", name, nd.port, filepath.Join(dir, name))
		if n > 1 {
			conf += fmt.Sprintf("cluster { name: agentbill, listen: 127.0.0.1:%d, routes: [%s] }\n",
				cports[i], strings.Join(routes, ", "))
		}
		cf := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		nd.proc = proc{name: name, bin: natsBin, args: []string{"-c", cf}, log: filepath.Join(dir, name+".log")}
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.start(t)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.signal(t, syscall.SIGTERM)
		}
	})
	c.waitJetStream(t)
	return c
}

// waitJetStream waits until JetStream answers through every node.
func (c *cluster) waitJetStream(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for _, nd := range c.nodes {
		if !nd.running() {
			continue
		}
		for {
			err := jsReady(fmt.Sprintf("nats://127.0.0.1:%d", nd.port))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: JetStream not ready within %s: %v\n%s", nd.name, startTimeout, err, nd.tail())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func jsReady(url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// service is one `agentbill serve --nats-url` process.
type service struct {
	proc
	instance string
}

// startService starts `agentbill serve` against the cluster, with extra
// flags (--http ...) if given. Each instance has a data directory of its
// own (its history file) and signs with the one key all of them share.
func startService(t *testing.T, c *cluster, instance string, replicas int, leaseTTL time.Duration, extra ...string) *service {
	t.Helper()
	bin, _ := binaries(t)
	s := &service{instance: instance, proc: proc{name: instance, bin: bin, log: filepath.Join(t.TempDir(), instance+".log"),
		args: append([]string{"serve", "--nats-url", c.urls(), "--instance", instance, "--replicas", strconv.Itoa(replicas),
			"--default-budget", "none", "--lease-ttl", leaseTTL.String(), "--snapshot-every", strconv.Itoa(crashSnapshotEvery),
			"--data", filepath.Join(c.dir, "service-"+instance), "--signing-key", filepath.Join(c.dir, "signing.key")}, extra...)}}
	s.start(t)
	// No fault in these scenarios breaks the log: a writer that halts on
	// an integrity check (projections: "ledger halted") is a failure even
	// if another one served the load. Checked after the process stops.
	t.Cleanup(func() {
		if line, ok := s.loggedAfter(haltedLine, time.Time{}); ok {
			t.Errorf("%s halted: %s", instance, line)
		}
	})
	t.Cleanup(func() { s.signal(t, syscall.SIGTERM) })
	return s
}

// crashSnapshotEvery makes the services snapshot often (serve's least),
// so kills land while the shadow encodes or stores one, and restarts
// start from the snapshots it took.
const crashSnapshotEvery = 1_000

// haltedLine is what a writer logs when an integrity check stops it.
const haltedLine = "ledger halted"

// leaseHolder returns the instance holding writer 0's lease ("" if none).
func leaseHolder(ctx context.Context, js jetstream.JetStream) string {
	kv, err := js.KeyValue(ctx, projections.LeaseBucket)
	if err != nil {
		return ""
	}
	e, err := kv.Get(ctx, projections.LeaseKey("0"))
	if err != nil {
		return ""
	}
	var v struct {
		Holder string `json:"holder"`
	}
	if json.Unmarshal(e.Value(), &v) != nil {
		return ""
	}
	inst, _, _ := strings.Cut(v.Holder, "/")
	return inst
}

// loggedAfter returns the first line the process logged at or after t0
// that contains s (serve's log lines start with time=<RFC 3339>).
func (p *proc) loggedAfter(s string, t0 time.Time) (string, bool) {
	f, err := os.Open(p.log)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		ts, _, ok := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if ok && err == nil && !at.Before(t0) && strings.Contains(line, s) {
			return line, true
		}
	}
	return "", false
}
