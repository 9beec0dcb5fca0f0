package main

import (
	"context"
	"log/slog"

	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/metrics"
	"github.com/agentbill/agentbill/projections"
	"github.com/agentbill/agentbill/webhooks"
)

// startWebhooks starts the webhook deliveries on their own connection:
// they run while w leads (with --partitions, only partition 0's leader
// delivers: one worker per endpoint in the whole deployment). Their
// metrics go to m, if any. stop ends them and closes the connection.
func startWebhooks(ctx context.Context, cfg serveConfig, srv *embedded.Server, w *projections.Writer, m *metrics.Metrics, log *slog.Logger) (stop func(), err error) {
	nc, err := connectWriter(cfg, srv, "agentbill-webhooks", throughLoopback)
	if err != nil {
		return nil, err
	}
	svc, err := webhooks.New(webhooks.Config{Conn: nc, Replicas: cfg.Replicas, Schedule: cfg.Webhooks, Logger: log})
	if err != nil {
		nc.Close()
		return nil, err
	}
	if m != nil {
		if err := m.Register(svc.Collectors()...); err != nil {
			nc.Close()
			return nil, err
		}
	}
	lead := func() bool { return cfg.Partition == 0 && w.Role() == projections.RoleLeader }
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(hctx, lead)
	}()
	return func() {
		cancel()
		<-done
		_ = nc.Drain()
	}, nil
}
