// Package natsx holds Rosetta's use of NATS: the embedded server, the
// provisioning of streams and consumers, and config events.
package natsx

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EmbeddedConfig configures the in-process NATS server of `rosetta dev`.
type EmbeddedConfig struct {
	// Dir holds JetStream's file storage; it survives restarts.
	Dir string
	// Host and Port to listen on. Port -1 picks a free port; 0 means the
	// NATS default 4222, which Rosetta never uses implicitly.
	Host string
	Port int
	// SyncAlways makes JetStream write and fsync every message before it
	// acknowledges it. Without it, a SIGKILL of the process can lose
	// messages JetStream already acknowledged (measured: e2e
	// TestConvergesAfterSIGKILL loses updates), and capture confirms WAL to
	// the source on those acks, so the change would be gone for good.
	SyncAlways bool
	// SyncInterval is how often JetStream fsyncs when SyncAlways is off;
	// 0 keeps the server default (2 minutes).
	SyncInterval time.Duration
	// Users, when set, are the only clients the server admits (no
	// anonymous access); see DevCredentials.
	Users []*server.User
	// TLS, when set, makes every client connection use TLS.
	TLS *tls.Config
	// AtRest encrypts JetStream's files (atrest.go); the zero value
	// writes plaintext.
	AtRest AtRest
}

// Embedded is a running in-process NATS server with JetStream.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a NATS server with file-backed JetStream in cfg.Dir
// and waits until it accepts connections.
func StartEmbedded(cfg EmbeddedConfig, log *slog.Logger) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("start embedded nats: storage dir is empty")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := cfg.Port
	if port == 0 {
		port = -1
	}
	opts := &server.Options{
		ServerName:         "rosetta-embedded",
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           filepath.Clean(cfg.Dir),
		NoSigs:             true,
		MaxPayload:         8 << 20,
		SyncInterval:       cfg.SyncInterval,
		SyncAlways:         cfg.SyncAlways,
		JetStreamMaxMemory: 256 << 20,
		Users:              cfg.Users,
		JetStreamKey:       cfg.AtRest.Key,
		JetStreamOldKey:    cfg.AtRest.PreviousKey,
		JetStreamCipher:    cfg.AtRest.Cipher,
	}
	if err := checkStoreBefore(opts.StoreDir, cfg.AtRest); err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	if cfg.TLS != nil {
		opts.TLSConfig = cfg.TLS
		opts.TLS = true
		opts.TLSTimeout = 5
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("start embedded nats: not ready after 30s (storage %s)", cfg.Dir)
	}
	// The streams are loaded before the server accepts connections.
	if err := checkStoreAfter(srv, opts.StoreDir, cfg.AtRest); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	if err := recordStore(opts.StoreDir, cfg.AtRest); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	if log != nil {
		log.Info("embedded nats started", "url", srv.ClientURL(), "store", cfg.Dir,
			"encrypted", cfg.AtRest.Key != "", "cipher", cfg.AtRest.Cipher.String())
	}
	return &Embedded{srv: srv}, nil
}

// ClientURL is the URL clients connect to.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// Server exposes the server for tests that restart it.
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits for it to finish.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Liveness is how a client finds out that its connection to NATS is dead
// although no error arrived (a half-open TCP connection: the server or a
// middlebox vanished without a FIN or RST). The client pings every
// PingInterval; when MaxPingsOut pings in a row go unanswered it drops the
// connection and reconnects, so a dead link is detected within about
// PingInterval × (MaxPingsOut + 1). Writes get the same bound: nats.go
// flushes under the connection's lock, so a write blocked on a stalled
// link (a publisher with more bytes in flight than the socket buffers
// hold: capture's messages of many changes) holds the ping timer too, and
// only the write deadline ends it, so ConnectWith sets that deadline to
// the same bound (nats.go's default would be a minute).
type Liveness struct {
	PingInterval time.Duration
	MaxPingsOut  int
}

// DefaultLiveness detects a dead connection within about 15s (5s × 3).
func DefaultLiveness() Liveness { return Liveness{PingInterval: 5 * time.Second, MaxPingsOut: 2} }

// Connect opens a connection that reconnects forever (services outlive NATS
// restarts) and returns it with its JetStream context. It detects a dead
// connection as DefaultLiveness says.
func Connect(ctx context.Context, url, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	return ConnectWith(ctx, url, name, log, DefaultLiveness())
}

// ConnectWith is Connect with the given liveness settings (zero fields take
// DefaultLiveness's) and extra options (credentials, TLS).
func ConnectWith(ctx context.Context, url, name string, log *slog.Logger, live Liveness, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	d := DefaultLiveness()
	if live.PingInterval <= 0 {
		live.PingInterval = d.PingInterval
	}
	if live.MaxPingsOut <= 0 {
		live.MaxPingsOut = d.MaxPingsOut
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.PingInterval(live.PingInterval),
		nats.MaxPingsOutstanding(live.MaxPingsOut),
		nats.FlusherTimeout(live.PingInterval * time.Duration(live.MaxPingsOut+1)),
		// A write that failed may have sent part of a message: the
		// connection cannot carry another, so reconnect at once.
		nats.ReconnectOnFlusherError(),
	}
	opts = append(opts, extra...)
	if log != nil {
		opts = append(opts,
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					log.Warn("nats disconnected", "error", err)
				}
			}),
			nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", RedactURL(c.ConnectedUrl())) }),
		)
	}
	// The URL may hold a user and password or a token: errors name it
	// redacted.
	shown := RedactURL(url)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect nats %s: %w", shown, RedactError(err, url))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream on %s: %w", shown, err)
	}
	// RetryOnFailedConnect returns before the first connect; wait for it so
	// callers fail fast with a clear error when the URL is wrong.
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			// LastError says why (refused credentials, TLS).
			err := RedactError(nc.LastError(), url)
			nc.Close()
			return nil, nil, fmt.Errorf("connect nats %s: not connected after 10s (last error: %v)", shown, err)
		}
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nc, js, nil
}
