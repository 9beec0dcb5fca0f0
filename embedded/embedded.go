// Package embedded starts the nats-server that `agentbill serve` runs in
// process by default, with JetStream on file storage and fsync before ack.
//
// Without a config file the server has authorization built in (SECURITY.md,
// "Default mode"): a client with no credential is an agent and nothing
// more; the service's own connections (Server.Connect) authenticate with an
// nkey made in memory for this process; and an optional local admin
// authenticates with the nkey seed serve keeps in its data directory
// (EnsureAdminKey). With a config file, the file's authorization applies
// unchanged.
package embedded

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ReadyTimeout bounds how long Start waits for the server to accept clients.
const ReadyTimeout = 10 * time.Second

// Bounds of a server started without a config file, the same as nats.conf
// sets (its comments say why; TestBoundsFollowNATSConf checks they agree):
// the server's connections, and each connection's subscriptions.
// nats-server has no per-user limits for users it is configured with.
const (
	ConnectionsMax   = 10_000
	SubscriptionsMax = 1024
)

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
	// AdminNKey is the public key of the local admin user (EnsureAdminKey),
	// or "" for none. Without ConfigFile only; a config file's users are
	// its own.
	AdminNKey string
	// NoAuth leaves the server without authorization, as before the default
	// mode had any: every client may do anything. Only `agentbill bench`
	// sets it, for its throwaway server's bare-NATS baselines on subjects
	// no role may use; the service never does. Without ConfigFile only.
	NoAuth bool
	// SyncInterval, if set, is how often the server's file store runs its
	// block maintenance (server.Options.SyncInterval; 2 minutes by
	// default). Every write is still fsynced before its ack. The
	// maintenance is also when the store drops the cache of a block idle
	// for 30 s, so the interval bounds how long those caches stay in
	// memory; only the soak (bench/soak.go) sets it.
	SyncInterval time.Duration
}

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	// service authenticates the service's connections; nil when the
	// authorization is a config file's (or there is none, NoAuth).
	service nkeys.KeyPair
	// configured is set when the server runs from a config file.
	configured bool
}

// anonymousUser is the user a client without credentials is (NoAuthUser).
// Its password is random and never given out: nobody logs in as it.
const anonymousUser = "anonymous"

// anonymousPasswordBytes is the entropy of anonymousUser's password.
const anonymousPasswordBytes = 32

// Start starts a server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	opts := &server.Options{}
	if o.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(o.ConfigFile); err != nil {
			return nil, fmt.Errorf("nats config %s: %w", o.ConfigFile, err)
		}
		if o.AdminNKey != "" || o.NoAuth {
			return nil, errors.New("embedded nats: AdminNKey and NoAuth apply without a config file only")
		}
	}
	srv := &Server{configured: o.ConfigFile != ""}
	if o.ConfigFile == "" && !o.NoAuth {
		var err error
		if srv.service, err = defaultAuthorization(opts, o.AdminNKey); err != nil {
			return nil, err
		}
	} else if o.NoAuth && o.AdminNKey != "" {
		return nil, errors.New("embedded nats: AdminNKey needs authorization (NoAuth is set)")
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
	if o.ConfigFile == "" {
		opts.MaxConn, opts.MaxSubs = ConnectionsMax, SubscriptionsMax
	}
	if o.SyncInterval > 0 {
		opts.SyncInterval = o.SyncInterval
	}
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
	srv.Server = s
	return srv, nil
}

// defaultAuthorization sets the default mode's users on opts: the
// anonymous agent, the service (a fresh nkey, returned) and, if adminNKey
// is set, the local admin.
func defaultAuthorization(opts *server.Options, adminNKey string) (nkeys.KeyPair, error) {
	pw := make([]byte, anonymousPasswordBytes)
	if _, err := rand.Read(pw); err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("embedded nats: service nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("embedded nats: service nkey: %w", err)
	}
	opts.Users = []*server.User{{Username: anonymousUser, Password: hex.EncodeToString(pw), Permissions: anonymousPermissions()}}
	opts.NoAuthUser = anonymousUser
	opts.Nkeys = []*server.NkeyUser{{Nkey: pub, Permissions: servicePermissions()}}
	if adminNKey != "" {
		if !nkeys.IsValidPublicUserKey(adminNKey) {
			return nil, fmt.Errorf("embedded nats: admin nkey %q is not a public user key", adminNKey)
		}
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: adminNKey, Permissions: adminPermissions()})
	}
	return kp, nil
}

// ServiceOptions are the nats.Connect options that authenticate as the
// service: its nkey and inbox prefix. They are nil when the server's
// authorization is a config file's (the caller brings the service user's
// credentials) or when there is none (NoAuth).
func (s *Server) ServiceOptions() []nats.Option {
	if s.service == nil {
		return nil
	}
	pub, _ := s.service.PublicKey() // a key pair made by nkeys.CreateUser has one
	return []nats.Option{nats.Nkey(pub, s.service.Sign), nats.CustomInboxPrefix(ServiceInboxPrefix)}
}

// Connect opens a connection named name as the service (ServiceOptions),
// with opts after those; with a config file, opts must carry the service
// user's credentials.
//
// Without a config file, when the server has a TCP listener, the
// connection goes through it on loopback (loopbackURL); otherwise it is in
// process. Through loopback the ledger does more per commit and less per
// request: an in-process connection is a synchronous pipe, each of the
// server's writes to it waits for the client to read, and the writer's
// commits came out smaller (15 requests a commit against 25 at 64 clients;
// at GOMAXPROCS 1, 2.4 against 21 and half the throughput; BENCHMARKS.md,
// "CPU per request and the half-load tail"). The service's nkey answers a challenge, so no secret
// crosses the socket. A config file's server keeps in-process
// connections: its listener may require TLS, or take a password, which
// would then cross the socket.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	if !s.configured {
		if u := s.loopbackURL(); u != "" {
			all := append([]nats.Option{nats.Name(name)}, s.ServiceOptions()...)
			return nats.Connect(u, append(all, opts...)...)
		}
	}
	return s.ConnectInProcess(name, opts...)
}

// ConnectInProcess is Connect without the loopback: always in process.
// The writer's log connection (its commits and their acks, and its
// replays) uses it: a commit's round trip then wakes each goroutine on its
// way directly, rather than through the network poller, which a busy
// process polls only when a processor runs out of work. At 64 clients the
// commits' ack wait p50 fell from about 1.0 to 0.5-0.6 ms (BENCHMARKS.md,
// "2026-12-07, where a spread request's time goes"). One commit and one
// ack at a time are what a synchronous pipe carries well; the requests
// and replies, many at once, are not (Connect).
func (s *Server) ConnectInProcess(name string, opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{nats.InProcessServer(s.Server), nats.Name(name)}, s.ServiceOptions()...)
	return nats.Connect("", append(all, opts...)...)
}

// loopbackURL is the URL of the server's client listener as this machine
// reaches it (an unspecified address, such as 0.0.0.0, becomes loopback),
// or "" when the server has no listener. Start sets no TLS of its own;
// only a config file can (Connect does not use this with one).
func (s *Server) loopbackURL() string {
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok || addr == nil {
		return ""
	}
	ip := addr.IP
	if ip.IsUnspecified() {
		// Go listens on 0.0.0.0 and :: with one dual-stack socket, which
		// reports ::; 127.0.0.1 reaches it either way.
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "nats://" + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
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
