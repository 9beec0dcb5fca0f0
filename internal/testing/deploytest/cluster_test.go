package deploytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The compose file's shape, read line by line (no YAML parser in the
// module; the file is kept in a shape these patterns read, and
// TestComposeConfigValid checks docker-compose agrees it is valid).
var (
	composeNATSCommand  = regexp.MustCompile(`(?m)^\s*command:\s*(\[.*"-c".*\])\s*$`)
	composeServeCommand = regexp.MustCompile(`(?m)^\s*command:\s*(\["serve".*\])\s*$`)
	composeWorkDir      = regexp.MustCompile(`(?m)^\s*working_dir:\s*(\S+)\s*$`)
	composeVolume       = regexp.MustCompile(`(?m)^\s*-\s*nats-(\d+)-data:(/[^:\s]*)`)
	composeRouteHost    = regexp.MustCompile(`nats://(nats-\d+):6222`)
	composeClientHost   = regexp.MustCompile(`nats://(nats-\d+):4222`)
)

// composeCommands returns the JSON command lines re matches.
func composeCommands(t *testing.T, compose []byte, re *regexp.Regexp) [][]string {
	t.Helper()
	var cmds [][]string
	for _, m := range re.FindAllSubmatch(compose, -1) {
		var cmd []string
		if err := json.Unmarshal(m[1], &cmd); err != nil {
			t.Fatalf("%s: command %s: %v", composePath, m[1], err)
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// flagValue returns the value following name in args.
func flagValue(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// TestComposeClusterRuns runs docker-compose.yml's topology on loopback:
// its three nats-server command lines, with the repo's nats.conf (changed
// only where a test must: the mounted config path, loopback for 0.0.0.0,
// free ports, node names to ports in the routes), then its two agentbill
// instances as writers with the same flags (replicas, instance names). It
// checks the nodes form one JetStream cluster with fsync on and the store
// where the volume is mounted, one instance leads and the other stands by,
// the ledger stream is R3, and a node killed with SIGKILL costs nothing.
func TestComposeClusterRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server subprocesses; skipped with -short")
	}
	compose, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	natsCmds := composeCommands(t, compose, composeNATSCommand)
	serveCmds := composeCommands(t, compose, composeServeCommand)
	if len(natsCmds) != 3 || len(serveCmds) != 2 {
		t.Fatalf("%s has %d nats and %d agentbill commands, want 3 and 2", composePath, len(natsCmds), len(serveCmds))
	}
	wd := composeWorkDir.FindSubmatch(compose)
	vols := composeVolume.FindAllSubmatch(compose, -1)
	if wd == nil || len(vols) != 3 {
		t.Fatalf("%s: want a working_dir and three nats-N-data volumes", composePath)
	}
	conf, err := server.ProcessConfigFile(natsConfPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if got := path.Join(string(wd[1]), conf.StoreDir); got != string(v[2]) {
			t.Errorf("in the container the store is %s, but nats-%s's volume is mounted at %s", got, v[1], v[2])
		}
	}

	// Each node's ports here, by its compose host name.
	type local struct{ port, mon, route int }
	nodes := map[string]local{}
	for _, cmd := range natsCmds {
		nodes[flagValue(cmd, "--name")] = local{testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)}
	}
	bin := natsServerBinary(t)
	var procs []*natsProc
	var urls []string
	for _, cmd := range natsCmds {
		name := flagValue(cmd, "--name")
		n, ok := nodes[name]
		if !ok || flagValue(cmd, "--cluster_name") == "" || flagValue(cmd, "--cluster") == "" {
			t.Fatalf("nats command %v: want --name, --cluster_name and --cluster", cmd)
		}
		args := localArgs(t, cmd, n.port, n.mon, t.TempDir())
		for i := range args {
			switch {
			case i > 0 && args[i-1] == "--cluster":
				args[i] = "nats://127.0.0.1:" + strconv.Itoa(n.route)
			case i > 0 && args[i-1] == "--routes":
				args[i] = composeRouteHost.ReplaceAllStringFunc(args[i], func(m string) string {
					host := composeRouteHost.FindStringSubmatch(m)[1]
					r, ok := nodes[host]
					if !ok {
						t.Fatalf("route to unknown node %s", host)
					}
					return "nats://127.0.0.1:" + strconv.Itoa(r.route)
				})
			}
		}
		procs = append(procs, spawnNATS(t, bin, t.TempDir(), n.port, args...))
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(n.port))
	}
	for _, p := range procs {
		p.waitReady(t)
	}

	// Leader and standby must sign with one key: a standby halts on
	// commits signed by a key it does not trust.
	key := flagValue(serveCmds[0], "--signing-key")
	mount := regexp.MustCompile(`(?m)^\s*-\s*(\S+):` + regexp.QuoteMeta(path.Dir(key)) + `\s*$`)
	mounts := mount.FindAllSubmatch(compose, -1)
	for _, cmd := range serveCmds {
		if got := flagValue(cmd, "--signing-key"); key == "" || got != key {
			t.Errorf("agentbill command %v: --signing-key %q, want one key for every instance", cmd, got)
		}
	}
	if len(mounts) != len(serveCmds) || len(mounts) > 0 && slices.ContainsFunc(mounts, func(m [][]byte) bool {
		return string(m[1]) != string(mounts[0][1])
	}) {
		t.Errorf("the signing key's directory %s is not one volume mounted in every agentbill instance: %q", path.Dir(key), mounts)
	}

	// The agentbill instances: the same flags, the nodes' URLs mapped.
	var instances []string
	for _, cmd := range serveCmds {
		url := composeClientHost.ReplaceAllStringFunc(flagValue(cmd, "--nats-url"), func(m string) string {
			return "nats://127.0.0.1:" + strconv.Itoa(nodes[composeClientHost.FindStringSubmatch(m)[1]].port)
		})
		if got := strings.Count(url, "127.0.0.1"); got != 3 {
			t.Errorf("agentbill --nats-url %s names %d nodes, want all 3", flagValue(cmd, "--nats-url"), got)
		}
		replicas, err := strconv.Atoi(flagValue(cmd, "--replicas"))
		if err != nil || replicas != 3 {
			t.Fatalf("agentbill command %v: want --replicas 3", cmd)
		}
		inst := flagValue(cmd, "--instance")
		if inst == "" || slices.Contains(instances, inst) {
			t.Fatalf("agentbill command %v: want a distinct --instance", cmd)
		}
		instances = append(instances, inst)
		// As `agentbill serve --nats-url url --replicas r --instance inst`
		// runs it: with a lease, as the service user.
		opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}
		startElectedWriter(t, projections.Config{
			Conn: connectAs(t, url, inst, "service", opts...), LogConn: connectAs(t, url, inst+"-log", "service", opts...),
			Replicas: replicas, Lease: &projections.LeaseConfig{Instance: inst},
		}, projections.RoleLeader, projections.RoleStandby)
	}
	all := strings.Join(urls, ",")
	c := client.New(connectAs(t, all, "deploytest-admin", "admin", nats.MaxReconnects(-1)), client.WithTimeout(attemptTimeout))
	setBudget(t, c, "user_123", "100")
	preflight(t, c, "user_123", "research_agent", "30")

	js := testenv.JetStream(t, connectAs(t, all, "deploytest-js", "service"))
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("ledger stream: replicas %d, cluster %+v; want R3 on three nodes", info.Config.Replicas, info.Cluster)
	}

	// Any one node can die: kill the stream's leader's node.
	leader := slices.IndexFunc(natsCmds, func(cmd []string) bool { return flagValue(cmd, "--name") == info.Cluster.Leader })
	if leader < 0 {
		t.Fatalf("stream leader %q is not a compose node", info.Cluster.Leader)
	}
	// The client retries for about 10 s; electing new stream and lease
	// leaders can take longer, so try again (same idempotency key) for up
	// to clusterRecoveryMax.
	procs[leader].kill9(t)
	killed := time.Now()
	req := ledger.PreflightRequest{AgentID: "research_agent", EstimatedUnits: units(t, "30"), IdempotencyKey: "after-node-kill"}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		r, err := c.Preflight(ctx, "user_123", req)
		cancel()
		if err == nil && r.Approved {
			break
		}
		if time.Since(killed) > clusterRecoveryMax {
			t.Fatalf("no approval within %s of killing the stream leader's node: %v %+v", clusterRecoveryMax, err, r)
		}
	}
	t.Logf("first approval %s after killing the stream leader's node", time.Since(killed).Round(time.Millisecond))
	wantUnits(t, "remaining with a node dead", status(t, c, "user_123").Remaining.Units, "40")
}

// clusterRecoveryMax bounds the wait for the ledger to serve again after
// a node dies.
const clusterRecoveryMax = 45 * time.Second

// startElectedWriter runs a writer with cfg (and a logger to the test's
// output) until the test ends, failing the test if it returns an error,
// and waits until its role is one of roles.
func startElectedWriter(t *testing.T, cfg projections.Config, roles ...string) {
	t.Helper()
	inst := cfg.Lease.Instance
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	pw := projections.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := pw.Run(ctx); err != nil {
			t.Errorf("%s: %v", inst, err)
		}
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(writerReadyTimeout)
	for !slices.Contains(roles, pw.Role()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: role %s after %s, want one of %v", inst, pw.Role(), writerReadyTimeout, roles)
		}
		time.Sleep(pollInterval)
	}
}

// partitionBlock is nats.conf's commented-out partition mapping.
var partitionBlock = regexp.MustCompile(`(?s)# BEGIN partitions\n(.*?)# END partitions\n`)

// TestPartitionMappingRoutesToOwners enables nats.conf's partition
// mapping exactly as written (uncommented), runs one writer per partition
// with serve --partitions N, and sends requests as the agent and admin
// users to the unmapped subjects: NATS must route each to the writer that
// owns it (the writer refuses any other), so the server's partition() and
// the writers' FNV-1a agree for plain and encoded customer IDs. Replay
// and audit then work per partition and across them.
func TestPartitionMappingRoutesToOwners(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server subprocess; skipped with -short")
	}
	bin := natsServerBinary(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	cf := testenv.WriteNATSConf(t, filepath.Join(dir, "nats.conf"), port, filepath.Join(dir, "store"))
	src, err := os.ReadFile(cf)
	if err != nil {
		t.Fatal(err)
	}
	block := partitionBlock.FindSubmatch(src)
	if block == nil {
		t.Fatal("nats.conf has no '# BEGIN partitions' ... '# END partitions' block")
	}
	var enabled bytes.Buffer
	for _, line := range strings.SplitAfter(string(block[1]), "\n") {
		enabled.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
	}
	m := regexp.MustCompile(`partition\((\d+),2\)`).FindStringSubmatch(enabled.String())
	if m == nil {
		t.Fatalf("the partition block maps no partition(N,2):\n%s", enabled.String())
	}
	n, _ := strconv.Atoi(m[1])
	src = partitionBlock.ReplaceAll(src, enabled.Bytes())
	if err := os.WriteFile(cf, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.ProcessConfigFile(cf); err != nil {
		t.Fatalf("nats.conf with partitions enabled: %v", err)
	}
	srv := startNATS(t, bin, dir, port, "-c", cf)

	for i := range n {
		inst := fmt.Sprintf("p%d", i)
		startElectedWriter(t, projections.Config{
			Conn: connect(t, srv.url, inst), Partitions: n, Partition: i,
			Lease: &projections.LeaseConfig{Instance: inst},
		}, projections.RoleLeader)
	}
	admin := newClient(t, srv.url)
	agent := client.New(connectAs(t, srv.url, "deploytest-agent", "agent"), client.WithTimeout(attemptTimeout))
	var cids []string
	for i := range 6 * n {
		cid := fmt.Sprintf("user_%d", i)
		if i%3 == 0 {
			cid = fmt.Sprintf("acme.prod *> %d", i) // an encoded token
		}
		cids = append(cids, cid)
		setBudget(t, admin, cid, "100")
		preflight(t, agent, cid, "research_agent", "30")
	}

	// With the mapping on, a user scoped to one customer still reaches
	// only that customer.
	scoped := client.New(connectAs(t, srv.url, "deploytest-scoped", "agent-user_123"),
		client.WithTimeout(attemptTimeout), client.WithAttempts(1))
	setBudget(t, admin, "user_123", "100")
	preflight(t, scoped, "user_123", "research_agent", "1")
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := scoped.Status(ctx, cids[1]); err == nil {
		t.Errorf("the agent scoped to user_123 read %s's status", cids[1])
	}
	cids = append(cids, "user_123")

	js := testenv.JetStream(t, connect(t, srv.url, "deploytest-js"))
	total := 0
	for p := range n {
		s, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{Writer: strconv.Itoa(p)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.CustomerIDs(func(id string) {
			if got := events.PartitionOf(events.Token(id), n); got != p {
				t.Errorf("customer %q is in partition %d's log, but hashes to %d", id, p, got)
			}
		})
		total += s.Customers()
	}
	if total != len(cids) {
		t.Errorf("the partitions' logs hold %d customers, want %d", total, len(cids))
	}
	rep, err := audit.VerifyChain(ctx, js, nil, nil)
	if err != nil || rep.Broken != nil {
		t.Fatalf("audit verify across partitions: %v %+v", err, rep)
	}
	if len(rep.Writers) != n {
		t.Errorf("chains of %d writers, want %d: %v", len(rep.Writers), n, rep.Writers)
	}
	rows := 0
	if err := audit.History(ctx, js, audit.Filter{CustomerID: cids[2]}, func(audit.Row) error { rows++; return nil }); err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Errorf("audit of %s across partitions: %d rows, want 2 (budget_set, reserved)", cids[2], rows)
	}
	checkPricesAcrossPartitions(ctx, t, js, admin, agent, cids, n)
}

// checkPricesAcrossPartitions sets a price list through the NATS mapping:
// every partition's writer must answer and append it, so usage is priced
// with the same version wherever its customer lives, and each partition's
// replay holds that version.
func checkPricesAcrossPartitions(ctx context.Context, t *testing.T, js jetstream.JetStream, admin, agent *client.Client, cids []string, n int) {
	t.Helper()
	list := []byte(`{"list":"default","version":"2026-12-03","models":[{"id":"m","rates":{"input":"3","output":"15"}}]}`)
	r, err := admin.SetPrices(ctx, list)
	if err != nil || r.Partitions != n || !r.Changed {
		t.Fatalf("SetPrices across %d partitions: %+v, %v", n, r, err)
	}
	if r, err := admin.SetPrices(ctx, list); err != nil || r.Changed {
		t.Fatalf("SetPrices again: %+v, %v; want unchanged", r, err)
	}
	if _, err := agent.SetPrices(ctx, list); ledger.ErrorCode(err) != ledger.CodePermissionDenied {
		t.Errorf("an agent set a price list: %v", err)
	}
	in, out := int64(1200), int64(400)
	for _, cid := range cids {
		rr, err := agent.Record(ctx, cid, ledger.RecordRequest{AgentID: "research_agent",
			Usage: &events.Usage{Model: "m", InputTokens: &in, OutputTokens: &out}})
		if err != nil {
			t.Fatalf("record usage of %s: %v", cid, err)
		}
		if rr.ChargedUnits.String() != "0.0096" || rr.Pricing == nil || rr.Pricing.Version != "2026-12-03" {
			t.Errorf("%s charged %s with %+v, want 0.0096 from version 2026-12-03", cid, rr.ChargedUnits, rr.Pricing)
		}
	}
	for p := range n {
		s, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{Writer: strconv.Itoa(p)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		lists, err := s.PriceLists("default")
		if err != nil || lists.Lists[0].Version != "2026-12-03" {
			t.Errorf("partition %d replays price lists %+v, %v", p, lists, err)
		}
	}
}
