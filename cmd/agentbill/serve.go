package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats-server/v2/server"
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
	if c.Replicas != 1 && c.Replicas != 3 {
		errs = append(errs, fmt.Errorf("--replicas %d: use 1, or 3 on a cluster", c.Replicas))
	}
	if _, err := parseDefaultBudget(c.DefaultBudget); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
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

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := serveConfig{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data", "./data", "directory for the embedded server's JetStream store")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", "address the embedded nats-server listens on")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "use this external NATS (cluster) instead of embedding one")
	fs.StringVar(&cfg.NATSConfig, "nats-config", "", "nats-server config file for the embedded server")
	fs.StringVar(&cfg.DefaultBudget, "default-budget", "1000/month", "budget for unknown customers, UNITS/PERIOD, or none")
	fs.IntVar(&cfg.Replicas, "replicas", 1, "stream replicas: 1, or 3 on a JetStream cluster")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "agentbill serve: %v\n", err)
		return errUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	def, _ := parseDefaultBudget(cfg.DefaultBudget)

	nc, srv, err := connectServe(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		_ = nc.Drain()
		if srv != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
		log.Info("stopped")
	}()
	w := projections.New(projections.Config{Conn: nc, Replicas: cfg.Replicas, Default: def, Logger: log})
	return w.Run(ctx)
}

// connectServe starts the embedded server (unless --nats-url) and returns
// the writer's connection.
func connectServe(cfg serveConfig, log *slog.Logger) (*nats.Conn, *server.Server, error) {
	if cfg.NATSURL != "" {
		// Keep trying if NATS is not up yet (a cluster starting beside us);
		// the writer's first stream call waits for the connection.
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("agentbill-writer"), nats.MaxReconnects(-1),
			nats.RetryOnFailedConnect(true), nats.ReconnectWait(time.Second))
		if err != nil {
			return nil, nil, fmt.Errorf("connect %s: %w", cfg.NATSURL, err)
		}
		log.Info("using external NATS", "url", cfg.NATSURL, "connected", nc.IsConnected())
		return nc, nil, nil
	}
	srv, err := embedded.Start(embedded.Options{Listen: cfg.NATSListen, StoreDir: cfg.DataDir, ConfigFile: cfg.NATSConfig})
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("agentbill-writer"))
	if err != nil {
		srv.Shutdown()
		return nil, nil, err
	}
	log.Info("embedded nats-server started", "listen", srv.ClientURL(), "store", srv.JetStreamConfig().StoreDir, "fsync", "always")
	return nc, srv, nil
}
