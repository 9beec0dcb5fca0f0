package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/httpapi"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/metrics"
	"github.com/agentbill/agentbill/projections"
	"github.com/agentbill/agentbill/signing"
	"github.com/agentbill/agentbill/webhooks"
	"github.com/nats-io/nats.go"
)

// serveConfig is the serve subcommand's configuration.
type serveConfig struct {
	DataDir       string
	NATSListen    string
	NATSURL       string
	NATSConfig    string
	DefaultBudget string
	Replicas      int
	HTTP          string // HOST:PORT of the HTTP gateway; "" for none
	// Partitions and Partition: this instance writes partition Partition
	// of Partitions (1: the ledger is not partitioned).
	Partitions int
	Partition  int
	// Instance names this process in the writer lease; LeaseTTL is how
	// long the lease outlives its holder's last renewal.
	Instance  string
	LeaseTTL  time.Duration
	LogFormat string // text or json
	// CommitsInFlight is how many group commits may await their acks.
	CommitsInFlight int
	// SnapshotEvery and SnapshotInterval schedule the writer's snapshots:
	// one after that many events, or that long after the last while
	// events arrive.
	SnapshotEvery    uint64
	SnapshotInterval time.Duration
	// Creds authenticate the service's own connections (nats.conf's
	// service user); empty for a server without authorization.
	Creds client.Credentials
	// SigningKey is the private key every commit is signed with (created
	// if missing); TrustedKeys the public keys trusted besides it. Both
	// default to files in DataDir (package signing).
	SigningKey  string
	TrustedKeys string
	// AcceptReset is the operator's reason for accepting a lost or
	// replaced history instead of halting (projections.Config.AcceptReset).
	AcceptReset string
	// AdoptUnsigned is the operator's reason for adopting the unsigned
	// commits of a log written before commits were signed.
	AdoptUnsigned string
	// AlertsMaxAge is how long the alert stream keeps alerts.
	AlertsMaxAge time.Duration
	// RatePerSecond and RateBurst are every customer's preflight rate
	// unless its budget has its own ("0": no limit).
	RatePerSecond string
	RateBurst     int
	// KeyRatePerSecond and KeyRateBurst are each API key's request rate at
	// the HTTP gateway ("0": no limit).
	KeyRatePerSecond string
	KeyRateBurst     int
	// Webhooks is the webhook deliveries' retry schedule.
	Webhooks webhooks.Schedule
}

// Validate reports every problem at once.
func (c *serveConfig) Validate() error {
	var errs []error
	if c.NATSURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--data must not be empty"))
	}
	if c.NATSURL != "" && c.NATSConfig != "" {
		errs = append(errs, errors.New("--nats-config configures the embedded server; it cannot be used with --nats-url"))
	}
	if c.Partitions < 1 || c.Partitions > events.PartitionsMax {
		errs = append(errs, fmt.Errorf("--partitions %d: use 1 to %d", c.Partitions, events.PartitionsMax))
	} else if c.Partition < 0 || c.Partition >= c.Partitions {
		errs = append(errs, fmt.Errorf("--partition %d: use 0 to %d (--partitions %d)", c.Partition, c.Partitions-1, c.Partitions))
	}
	if c.Instance == "" {
		errs = append(errs, errors.New("--instance must not be empty"))
	}
	if c.LeaseTTL < projections.LeaseTTLMin || c.LeaseTTL > projections.LeaseTTLMax {
		errs = append(errs, fmt.Errorf("--lease-ttl %s: use %s to %s", c.LeaseTTL, projections.LeaseTTLMin, projections.LeaseTTLMax))
	}
	if c.CommitsInFlight < 1 || c.CommitsInFlight > projections.CommitsInFlightMax {
		errs = append(errs, fmt.Errorf("--commits-in-flight %d: use 1 to %d", c.CommitsInFlight, projections.CommitsInFlightMax))
	} else if c.CommitsInFlight > 1 && c.Partitions > 1 {
		errs = append(errs, errors.New("--commits-in-flight: a partition keeps one commit in flight (its fence is its own subject's last sequence)"))
	}
	if c.SnapshotEvery < SnapshotEveryMin {
		errs = append(errs, fmt.Errorf("--snapshot-every %d: at least %d events", c.SnapshotEvery, SnapshotEveryMin))
	}
	if c.SnapshotInterval < SnapshotIntervalMin {
		errs = append(errs, fmt.Errorf("--snapshot-interval %s: at least %s", c.SnapshotInterval, SnapshotIntervalMin))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: use text or json", c.LogFormat))
	}
	if c.AlertsMaxAge < projections.AlertMaxAgeMin {
		errs = append(errs, fmt.Errorf("--alerts-max-age %s: at least %s", c.AlertsMaxAge, projections.AlertMaxAgeMin))
	}
	if err := c.Webhooks.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Replicas != 1 && c.Replicas != 3 {
		errs = append(errs, fmt.Errorf("--replicas %d: use 1, or 3 on a cluster", c.Replicas))
	}
	if _, err := parseDefaultBudget(c.DefaultBudget); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseRateLimit("--rate-limit", c.RatePerSecond, c.RateBurst); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseRateLimit("--http-rate-limit", c.KeyRatePerSecond, c.KeyRateBurst); err != nil {
		errs = append(errs, err)
	}
	if err := checkHTTPAddr(c.HTTP); err != nil {
		errs = append(errs, err)
	}
	if err := c.Creds.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parseRateLimit reads the flags NAME-per-second and NAME-burst: a
// per-second rate of 0 is no limit (the burst is then ignored).
func parseRateLimit(name, perSecond string, burst int) (events.RateLimit, error) {
	u, err := events.ParseUnits(perSecond)
	if err != nil {
		return events.RateLimit{}, fmt.Errorf("%s-per-second %q: %w", name, perSecond, err)
	}
	if u.IsZero() {
		return events.RateLimit{}, nil
	}
	r := events.RateLimit{PerSecond: u, Burst: burst}
	if err := ledger.ValidateRateLimit(&r); err != nil {
		return events.RateLimit{}, fmt.Errorf("%s-per-second %s, %s-burst %d: %w", name, perSecond, name, burst, err)
	}
	return r, nil
}

// parseDefaultBudget reads "1000/month" or "none".
func parseDefaultBudget(s string) (*ledger.DefaultBudget, error) {
	if s == "none" {
		return nil, nil
	}
	units, period, ok := strings.Cut(s, "/")
	if !ok {
		return nil, fmt.Errorf("--default-budget %q: want UNITS/PERIOD (like 1000/month) or none", s)
	}
	u, err := events.ParseUnits(units)
	if err != nil {
		return nil, fmt.Errorf("--default-budget: %w", err)
	}
	p, err := ledger.ParsePeriod(period)
	if err != nil {
		return nil, fmt.Errorf("--default-budget: %w", err)
	}
	return &ledger.DefaultBudget{Limit: u, Period: p}, nil
}

// The least snapshot schedule serve accepts: a snapshot costs the shadow
// an encoding of the whole state and the disk its bytes, so a schedule
// tighter than this is a mistake rather than a setting (tests take them
// more often through projections.Config).
const (
	SnapshotEveryMin    = 1_000
	SnapshotIntervalMin = time.Second
)

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := serveConfig{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data", defaultDataDir(), "directory for the embedded server's JetStream store and, without --nats-config, the local admin credential "+
		embedded.AdminKeyFile+" (env "+EnvDataDir+")")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", "address the embedded nats-server listens on")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "use this external NATS (cluster) instead of embedding one")
	fs.StringVar(&cfg.NATSConfig, "nats-config", "", "nats-server config file for the embedded server")
	fs.StringVar(&cfg.DefaultBudget, "default-budget", "1000/month", "budget for unknown customers, UNITS/PERIOD, or none")
	fs.StringVar(&cfg.RatePerSecond, "rate-limit-per-second", strconv.Itoa(projections.RatePerSecondDefault),
		"preflights a second each customer may send on average, unless its budget has a rate_limit; 0: no limit (docs/PROTOCOL.md, Rate limits)")
	fs.IntVar(&cfg.RateBurst, "rate-limit-burst", projections.RateBurstDefault, "preflights each customer may send at once, unless its budget has a rate_limit")
	fs.StringVar(&cfg.KeyRatePerSecond, "http-rate-limit-per-second", strconv.Itoa(httpapi.KeyRatePerSecondDefault),
		"requests a second each API key may send to the HTTP gateway on average; past it 429; 0: no limit")
	fs.IntVar(&cfg.KeyRateBurst, "http-rate-limit-burst", httpapi.KeyRateBurstDefault, "requests each API key may send to the HTTP gateway at once")
	fs.IntVar(&cfg.Replicas, "replicas", 1, "stream replicas: 1, or 3 on a JetStream cluster")
	fs.StringVar(&cfg.HTTP, "http", "", "serve the HTTP gateway on HOST:PORT (off if empty)")
	fs.IntVar(&cfg.Partitions, "partitions", 1, "customer partitions of the ledger (each served by its own writer; see nats.conf)")
	fs.IntVar(&cfg.Partition, "partition", 0, "the partition this instance writes, 0 to --partitions - 1")
	fs.StringVar(&cfg.Instance, "instance", defaultInstance(), "this process's name in the writer lease (leader election)")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", projections.LeaseTTLDefault, "how long a dead leader's lease lasts before a standby takes over")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log lines as text or json")
	fs.IntVar(&cfg.CommitsInFlight, "commits-in-flight", projections.CommitsInFlightDefault,
		"group commits sent and awaiting their acks at once (more can help on R3; BENCHMARKS.md)")
	fs.Uint64Var(&cfg.SnapshotEvery, "snapshot-every", projections.SnapshotEventsEvery, "take a snapshot of the state after this many events (docs/audit.md, Snapshots)")
	fs.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", projections.SnapshotIntervalMax, "take a snapshot at least this often while events arrive")
	fs.StringVar(&cfg.SigningKey, "signing-key", "", "Ed25519 key (PEM) every commit is signed with, created if missing; every writer of one ledger needs the same one (default DATA/"+signing.KeyFile+")")
	fs.StringVar(&cfg.TrustedKeys, "trusted-keys", "", "PEM public keys whose commits are trusted besides the signing key's: earlier keys, after a rotation (default DATA/"+signing.TrustedFile+")")
	fs.DurationVar(&cfg.AlertsMaxAge, "alerts-max-age", projections.AlertMaxAgeDefault, "how long the alert stream "+projections.AlertStream+" keeps alerts (its max age)")
	fs.DurationVar(&cfg.Webhooks.Min, "webhook-backoff-min", webhooks.BackoffMinDefault, "wait after a webhook delivery's first failure; each further failure doubles it (docs/webhooks.md)")
	fs.DurationVar(&cfg.Webhooks.Max, "webhook-backoff-max", webhooks.BackoffMaxDefault, "longest wait between retries of a webhook delivery")
	fs.DurationVar(&cfg.Webhooks.MaxAge, "webhook-retry-max-age", webhooks.RetryMaxAgeDefault, "how long an endpoint may keep failing before it is parked (`agentbill webhooks resume` restarts it)")
	fs.StringVar(&cfg.AdoptUnsigned, "adopt-unsigned", "", "REASON: cover the unsigned commits a log written before signed commits ends with by one signed adoption commit, instead of halting (once, on upgrade; SECURITY.md)")
	fs.StringVar(&cfg.AcceptReset, "accept-reset", "", "REASON: start over a ledger stream that is gone, was replaced or ends early, instead of halting, and record that decision and REASON in the log (SECURITY.md)")
	nf := addNATSFlags(fs, false)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg.Creds = nf.creds
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "agentbill serve: %v\n", err)
		return errUsage
	}
	log := newLogger(cfg.LogFormat, stderr)
	def, _ := parseDefaultBudget(cfg.DefaultBudget)
	rate, _ := parseRateLimit("--rate-limit", cfg.RatePerSecond, cfg.RateBurst)
	keys, err := openSigningKeys(&cfg, log)
	if err != nil {
		return err
	}

	srv, err := startEmbedded(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if srv != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
		log.Info("stopped")
	}()
	// Requests and replies on one connection, commits and acks on another,
	// so an append never queues behind request traffic.
	nc, err := connectWriter(cfg, srv, "agentbill-writer", throughLoopback)
	if err != nil {
		return err
	}
	defer nc.Drain()
	lc, err := connectWriter(cfg, srv, "agentbill-writer-log", inProcess)
	if err != nil {
		return err
	}
	defer lc.Drain()
	wcfg := projections.Config{Conn: nc, LogConn: lc, Replicas: cfg.Replicas, Default: def, Logger: log, RateLimit: rate,
		Partitions: cfg.Partitions, Partition: cfg.Partition, CommitsInFlight: cfg.CommitsInFlight,
		Snapshots: projections.SnapshotConfig{EventsEvery: cfg.SnapshotEvery, IntervalMax: cfg.SnapshotInterval},
		Lease:     &projections.LeaseConfig{Instance: cfg.Instance, TTL: cfg.LeaseTTL},
		Signer:    keys.Signer, Keys: keys.Keyring, AcceptReset: cfg.AcceptReset, AdoptUnsigned: cfg.AdoptUnsigned,
		Alerts: &projections.AlertConfig{MaxAge: cfg.AlertsMaxAge}, Fault: faultFromEnv(log),
		HistoryFile: filepath.Join(cfg.DataDir, fmt.Sprintf("history-%d.json", cfg.Partition))}
	var m *metrics.Metrics
	if cfg.HTTP != "" {
		m = metrics.New(log) // served at /metrics; the writer reports to it
		wcfg.Observer = m
	}
	w := projections.New(wcfg)
	stopWebhooks, err := startWebhooks(ctx, cfg, srv, w, m, log)
	if err != nil {
		return err
	}
	defer stopWebhooks()
	if cfg.HTTP == "" {
		return w.Run(ctx)
	}
	return runGateway(ctx, cfg, srv, w, m, log)
}

// openSigningKeys opens the commit-signing key (creating it if missing)
// and the trusted public keys, and publishes every trusted public key in
// DATA/signing.pub for auditors.
func openSigningKeys(cfg *serveConfig, log *slog.Logger) (*signing.Keys, error) {
	if cfg.SigningKey == "" {
		cfg.SigningKey = filepath.Join(cfg.DataDir, signing.KeyFile)
	}
	if cfg.TrustedKeys == "" {
		cfg.TrustedKeys = filepath.Join(cfg.DataDir, signing.TrustedFile)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	public := filepath.Join(cfg.DataDir, signing.PublicFile)
	keys, created, err := signing.Open(cfg.SigningKey, cfg.TrustedKeys, public)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("created a new commit-signing key; keep it safe and give every writer of this ledger the same one",
			"key", cfg.SigningKey, "key_id", keys.Signer.KeyID())
	}
	log.Info("signing commits", "key_id", keys.Signer.KeyID(), "trusted", len(keys.Keyring), "public_keys", public)
	return keys, nil
}

// EnvFault names a fault-injection point (projections.FaultAfterAck...)
// at which serve kills itself with SIGKILL the first time the writer
// passes it: for crash tests of the real process, never set otherwise.
const EnvFault = "AGENTBILL_FAULT"

// faultFromEnv returns the writer's fault hook for $AGENTBILL_FAULT, nil
// if it is unset.
func faultFromEnv(log *slog.Logger) func(point string) {
	want := os.Getenv(EnvFault)
	if want == "" {
		return nil
	}
	log.Warn("fault injection armed: this process kills itself at the named point", "point", want)
	return func(point string) {
		if point == want {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}

// newLogger returns serve's logger: one line per lifecycle event.
func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// defaultInstance names this process: host name and pid.
func defaultInstance() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "agentbill"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}

// startEmbedded starts the embedded server, unless --nats-url names one.
// Without --nats-config it has the default mode's authorization
// (SECURITY.md): anonymous clients are agents, serve's own connections
// authenticate with a key made for this process, and the local admin with
// the seed in --data (written on the first start).
func startEmbedded(cfg serveConfig, log *slog.Logger) (*embedded.Server, error) {
	if cfg.NATSURL != "" {
		log.Info("using external NATS", "url", cfg.NATSURL)
		return nil, nil
	}
	o := embedded.Options{Listen: cfg.NATSListen, StoreDir: cfg.DataDir, ConfigFile: cfg.NATSConfig}
	adminKey := ""
	if cfg.NATSConfig == "" {
		adminKey = embedded.AdminKeyPath(cfg.DataDir)
		pub, err := embedded.EnsureAdminKey(adminKey)
		if err != nil {
			return nil, err
		}
		o.AdminNKey = pub
		if cfg.Creds != (client.Credentials{}) {
			log.Warn("the NATS credential flags and variables apply with --nats-config or --nats-url; the embedded server's own users are used instead")
		}
	}
	srv, err := embedded.Start(o)
	if err != nil {
		return nil, err
	}
	log.Info("embedded nats-server started", "listen", srv.ClientURL(), "store", srv.JetStreamConfig().StoreDir, "fsync", "always")
	if adminKey != "" {
		log.Info("local admin credential", "nkey_seed", adminKey, "inbox_prefix", embedded.AdminInboxPrefix,
			"anonymous", "agent requests only (SECURITY.md, Default mode)")
	}
	return srv, nil
}

// route is how connectWriter reaches the embedded server.
type route int

const (
	throughLoopback route = iota // its loopback listener (embedded.Server.Connect)
	inProcess                    // in process (embedded.Server.ConnectInProcess): the log's connection
)

// connectWriter opens one of serve's connections: to the embedded server
// (as the service: with --nats-config, the service user's credentials;
// by the route given), or to the external NATS, retrying until it is up
// (a cluster starting beside us).
func connectWriter(cfg serveConfig, srv *embedded.Server, name string, via route) (*nats.Conn, error) {
	creds, err := cfg.Creds.Options()
	if err != nil {
		return nil, err
	}
	if srv != nil {
		if cfg.NATSConfig == "" {
			creds = nil // the embedded server's service key (Server.Connect)
		}
		connect := srv.Connect
		if via == inProcess {
			connect = srv.ConnectInProcess
		}
		nc, err := connect(name, creds...)
		if err != nil {
			return nil, fmt.Errorf("connect to the embedded server as %q: %w (with --nats-config, serve needs the service user's credentials: --nats-user and AGENTBILL_NATS_PASSWORD, --nats-nkey or --nats-creds)", cfg.Creds.User, err)
		}
		return nc, nil
	}
	nc, err := nats.Connect(cfg.NATSURL, append(creds, nats.Name(name), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(time.Second))...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", cfg.NATSURL, err)
	}
	return nc, nil
}
