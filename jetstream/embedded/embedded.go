// Package embedded runs a NATS server with JetStream inside the calling
// process, for jobq's jetstream queues with nothing to install: a file store
// in a folder of the caller's, locked so that two processes never share it.
//
// It lives in a package of its own so that programs that only connect to a
// server (by URL) never build nats-server.
//
//	s, err := embedded.Start(embedded.Options{Dir: "/var/lib/myapp/nats"})
//	if err != nil { ... }
//	defer s.Shutdown()
//	nc, err := s.Connect()
package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ErrLocked is wrapped by Start's error when another server, in this process
// or another, holds the store folder.
var ErrLocked = errors.New("embedded: store folder in use")

// Options configure Start. The zero value of every field but Dir is usable.
type Options struct {
	// Dir is the store folder; it is created if missing. Required.
	Dir string
	// Host and Port are where the server listens for clients; Host
	// defaults to 127.0.0.1 and Port 0 picks a free port (see Server.URL).
	// A negative Port does not listen at all: only Connect reaches the
	// server, in-process.
	Host string
	Port int
	// SyncAlways makes the store fsync every write before acknowledging
	// it, which makes accepted jobs survive power loss, at a large cost in
	// throughput. Without it the store survives the crash of any process
	// (the data is in the kernel's page cache) and syncs every 2 minutes.
	SyncAlways bool
	// ReadyTimeout bounds the wait for the server to accept connections;
	// 0 means 10 seconds.
	ReadyTimeout time.Duration
	// Logs, when true, sends the server's log to standard error.
	Logs bool
}

// Server is a running embedded NATS server. Its methods are safe for
// concurrent use.
type Server struct {
	ns     *server.Server
	unlock func()
	dir    string
	host   string
	port   int
	once   sync.Once
}

// Start starts a NATS server with JetStream on a file store in o.Dir and
// waits until it accepts connections. It returns an error wrapping ErrLocked
// when another Server holds o.Dir, and the server's error when it cannot
// start (a port in use, a damaged store). It panics if o.Dir is empty.
//
// Cost: 2-8 ms on an empty folder; recovering a large store takes longer.
func Start(o Options) (*Server, error) {
	if o.Dir == "" {
		panic("embedded: Start: Options.Dir must not be empty")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded: store folder: %w", err)
	}
	unlock, err := lockDir(o.Dir)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "jobq-embedded",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   filepath.Join(o.Dir, "jetstream"),
		SyncAlways: o.SyncAlways,
		NoSigs:     true,
		NoLog:      !o.Logs,
		MaxPayload: 8 << 20,
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	switch {
	case o.Port < 0:
		opts.DontListen = true
		opts.Port = 0
	case o.Port == 0:
		opts.Port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("embedded: %w", err)
	}
	if o.Logs {
		ns.ConfigureLogger()
	}
	ns.Start()
	wait := o.ReadyTimeout
	if wait == 0 {
		wait = 10 * time.Second
	}
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		ns.WaitForShutdown()
		unlock()
		return nil, fmt.Errorf("embedded: server not ready after %v", wait)
	}
	srv := &Server{ns: ns, unlock: unlock, dir: o.Dir}
	if addr, ok := ns.Addr().(*net.TCPAddr); ok && addr != nil {
		srv.host, srv.port = addr.IP.String(), addr.Port
	}
	return srv, nil
}

// URL returns the address clients in other processes connect to, such as
// nats://127.0.0.1:4222, or "" when the server does not listen. It stays
// the same after Shutdown.
func (s *Server) URL() string {
	if s.port == 0 {
		return ""
	}
	return "nats://" + net.JoinHostPort(s.host, strconv.Itoa(s.port))
}

// Port returns the port the server listens on, or 0 when it does not
// listen; pass it to a later Start on the same folder to let clients
// reconnect to the restarted server.
func (s *Server) Port() int { return s.port }

// Dir returns the store folder.
func (s *Server) Dir() string { return s.dir }

// Connect returns a client connection to the server, in-process (no socket):
// the fastest way to reach it from the process that runs it. opts are passed
// to nats.Connect. A connection made this way cannot follow the server
// across a restart (it is tied to this Server); use nats.Connect(s.URL())
// for that.
//
// Cost: one in-memory pipe instead of a socket; about 0.1 ms to connect.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s.ns)}, opts...)
	return nats.Connect("", opts...)
}

// Shutdown stops the server, waits until it has stopped and its store is
// closed, and releases the folder's lock. Clients see their connection
// drop. It is idempotent.
//
// Cost: a few milliseconds, and the store's final flush.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.once.Do(s.unlock)
}
