// Package embedded starts the nats-server that `agentbill serve` runs in
// process by default, with JetStream on file storage and fsync before ack.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ReadyTimeout bounds how long Start waits for the server to accept clients.
const ReadyTimeout = 10 * time.Second

// Options configures the embedded server.
type Options struct {
	// Listen is HOST:PORT for client connections; "" means in-process only
	// (no TCP listener). Port -1 picks a free port.
	Listen string
	// StoreDir is where JetStream keeps the stream.
	StoreDir string
	// ConfigFile, if set, is a nats-server config file; Listen and StoreDir
	// fill in only what it leaves unset.
	ConfigFile string
	// NoSync turns off fsync before ack. Only benchmarks that measure its
	// cost set it; the service never does.
	NoSync bool
}

// Start starts a server and waits until it accepts connections.
func Start(o Options) (*server.Server, error) {
	opts := &server.Options{}
	if o.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(o.ConfigFile); err != nil {
			return nil, fmt.Errorf("nats config %s: %w", o.ConfigFile, err)
		}
	}
	if opts.ServerName == "" {
		opts.ServerName = "agentbill"
	}
	opts.JetStream = true
	if opts.StoreDir == "" {
		opts.StoreDir = o.StoreDir
	}
	if opts.StoreDir == "" {
		return nil, errors.New("embedded nats: a store directory is required")
	}
	opts.SyncAlways = !o.NoSync
	if o.Listen == "" {
		if o.ConfigFile == "" {
			opts.DontListen = true
		}
	} else if o.ConfigFile == "" || opts.Port == 0 {
		host, port, err := splitHostPort(o.Listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
	}
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(ReadyTimeout) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready within %s", ReadyTimeout)
	}
	return s, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", hp, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("listen address %q: bad port", hp)
	}
	return host, port, nil
}
