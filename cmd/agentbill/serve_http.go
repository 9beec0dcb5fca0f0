package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/httpapi"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats-server/v2/server"
)

// writerReadyPoll is how often serve checks whether the writer serves
// before it starts the gateway. The wait itself ends when the writer
// serves, stops, or serve is told to stop.
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

// runWithGateway runs the writer and, once it serves, the HTTP gateway on
// its own NATS connection. It returns when ctx ends, after stopping the
// gateway and then the writer, or as soon as either fails.
func runWithGateway(ctx context.Context, cfg serveConfig, srv *server.Server, w *projections.Writer, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.Run(ctx) }()
	tick := time.NewTicker(writerReadyPoll)
	for !w.Ready() {
		select {
		case err := <-werr:
			tick.Stop()
			return err // stopped (or failed) before serving
		case <-tick.C:
		}
	}
	tick.Stop()

	herr, stop, err := startGateway(ctx, cfg, srv, log)
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

// startGateway connects, opens the key store, listens on --http and
// serves. herr receives the server's error if it stops by itself; stop
// shuts it down gracefully and closes its connection.
func startGateway(ctx context.Context, cfg serveConfig, srv *server.Server, log *slog.Logger) (<-chan error, func(), error) {
	nc, err := connectWriter(cfg, srv, "agentbill-http")
	if err != nil {
		return nil, nil, err
	}
	store, err := keys.Open(ctx, nc, keys.Options{Replicas: cfg.Replicas})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	gw, err := httpapi.New(httpapi.Config{Conn: nc, Keys: store, Logger: log})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("http gateway: %w", err)
	}
	hs := gw.HTTPServer(cfg.HTTP)
	herr := make(chan error, 1)
	go func() { herr <- hs.Serve(ln) }()
	log.Info("http gateway serving", "addr", ln.Addr().String(), "keys_bucket", keys.Bucket)
	stop := func() {
		if err := httpapi.Shutdown(hs); err != nil {
			log.Warn("http gateway shutdown", "err", err)
		}
		_ = nc.Drain()
	}
	return herr, stop, nil
}
