package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/dashboard"
	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/httpapi"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/metrics"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// writerReadyPoll is how often serve checks whether the writer leads or
// stands by before it starts the gateway. The wait itself ends when it
// does, or when the writer stops.
const writerReadyPoll = 10 * time.Millisecond

// checkHTTPAddr validates --http: empty (no gateway) or HOST:PORT.
func checkHTTPAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var n int
		if n, err = strconv.Atoi(port); err == nil && (n < 0 || n > 65535) {
			err = errors.New("port out of range")
		}
	}
	if err != nil {
		return fmt.Errorf("--http %q: want HOST:PORT (like 127.0.0.1:8080): %v", addr, err)
	}
	return nil
}

// runGateway runs the writer and, once it leads or stands by, the HTTP
// gateway on its own NATS connection. It returns when ctx ends, after
// stopping the gateway and then the writer, or as soon as either fails.
func runGateway(ctx context.Context, cfg serveConfig, srv *embedded.Server, w *projections.Writer, m *metrics.Metrics, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.Watch(w, nil)
	werr := make(chan error, 1)
	go func() { werr <- w.Run(ctx) }()
	if served, err := waitServing(w, werr); !served {
		return err // stopped (or failed) before serving
	}
	herr, stop, err := startGateway(ctx, cfg, srv, w, m, log)
	if err != nil {
		cancel()
		return errors.Join(err, <-werr)
	}
	select {
	case <-ctx.Done():
	case err = <-herr:
		log.Error("http gateway failed", "err", err)
	case err = <-werr:
		stop()
		return err
	}
	stop()
	cancel()
	return errors.Join(err, <-werr)
}

// waitServing waits until the writer leads or stands by (a standby's
// gateway relays to the leader over NATS), and reports true; or until the
// writer stops first, and returns false with what it returned (nil when
// serve was told to stop).
func waitServing(w *projections.Writer, werr <-chan error) (bool, error) {
	tick := time.NewTicker(writerReadyPoll)
	defer tick.Stop()
	for {
		switch w.Role() {
		case projections.RoleLeader, projections.RoleStandby, projections.RoleHalted:
			// A halted writer answers every request unavailable, naming
			// the break; the gateway serves so /readyz says 503 and why.
			return true, nil
		}
		select {
		case err := <-werr:
			return false, err
		case <-tick.C:
		}
	}
}

// startGateway connects, builds the gateway (newGateway), listens on
// --http and serves. herr receives the server's error if it stops by
// itself; stop shuts it all down gracefully and closes its connection.
func startGateway(ctx context.Context, cfg serveConfig, srv *embedded.Server, w *projections.Writer, m *metrics.Metrics, log *slog.Logger) (<-chan error, func(), error) {
	nc, err := connectWriter(cfg, srv, "agentbill-http", throughLoopback)
	if err != nil {
		return nil, nil, err
	}
	gw, closeGW, err := newGateway(ctx, cfg, nc, w, m, log)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		closeGW()
		nc.Close()
		return nil, nil, fmt.Errorf("http gateway: %w", err)
	}
	herr, stop := serveGateway(gw, ln, nc, closeGW, log)
	return herr, stop, nil
}

// newGateway opens the key store and builds the gateway on nc with the
// dashboard (reading a log follower it starts) and /metrics. closeGW ends
// the dashboard's live feeds and the follower.
func newGateway(ctx context.Context, cfg serveConfig, nc *nats.Conn, w *projections.Writer, m *metrics.Metrics, log *slog.Logger) (*httpapi.Server, func(), error) {
	store, err := keys.Open(ctx, nc, keys.Options{Replicas: cfg.Replicas})
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	fctx, stopFollower := context.WithCancel(ctx)
	follower := projections.NewFollower(projections.FollowerConfig{JS: js, Logger: log})
	go func() {
		// The follower stops only when fctx ends or the log stayed out of
		// reach past its retry bounds; the dashboard then shows the state
		// as of then, and the writer meets the same outage and stops.
		if err := follower.Run(fctx); err != nil {
			log.Error("log follower stopped", "err", err)
		}
	}()
	m.WatchFollower(follower.Seq)
	dash, err := dashboard.New(dashboard.Config{Conn: nc, JS: js, Keys: store, Ledger: follower, Logger: log})
	if err != nil {
		stopFollower()
		return nil, nil, err
	}
	closeGW := func() {
		dash.Close()
		stopFollower()
	}
	keyRate, _ := parseRateLimit("--http-rate-limit", cfg.KeyRatePerSecond, cfg.KeyRateBurst) // checked by Validate
	gw, err := httpapi.New(httpapi.Config{Conn: nc, Keys: store, Logger: log, Role: w.Role, Metrics: m.Handler(), Dashboard: dash,
		KeyRateLimit: keyRate})
	if err != nil {
		closeGW()
		return nil, nil, err
	}
	return gw, closeGW, nil
}

// serveGateway serves gw on ln until stop.
func serveGateway(gw *httpapi.Server, ln net.Listener, nc *nats.Conn, closeGW func(), log *slog.Logger) (<-chan error, func()) {
	hs := gw.HTTPServer(ln.Addr().String())
	hs.RegisterOnShutdown(closeGW) // end the live feeds, or Shutdown waits for them
	herr := make(chan error, 1)
	go func() { herr <- hs.Serve(ln) }()
	log.Info("http gateway serving", "addr", ln.Addr().String(), "keys_bucket", keys.Bucket,
		"dashboard", "http://"+ln.Addr().String()+"/", "metrics", "/metrics")
	stop := func() {
		if err := httpapi.Shutdown(hs); err != nil {
			log.Warn("http gateway shutdown", "err", err)
		}
		closeGW()
		_ = nc.Drain()
		log.Info("http gateway stopped")
	}
	return herr, stop
}
