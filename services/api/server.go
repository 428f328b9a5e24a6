// Package api is Rosetta's REST API (Fiber, JSON, under /api/v1): CRUD for
// sources, destinations and pipelines, pipeline start/pause and status,
// dead-letter queue inspection and recovery (dlq.go), and health. It writes
// the config database through configstore and publishes a
// contracts.ConfigEvent after every committed change.
//
// Passwords and keys are write-only: requests may set them, responses only
// say whether they are set ("password_set"), and request bodies are never
// logged.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

// Config configures the API server.
type Config struct {
	// Addr is where Listen listens (host:port; port 0 picks a free one).
	Addr string
	// RequestTimeout bounds the work of one request (database calls,
	// connection checks).
	RequestTimeout time.Duration
	// CheckTimeout bounds each connection attempt to a source or destination
	// made to validate a request.
	CheckTimeout time.Duration
	// PublishTimeout bounds waiting for JetStream to ack a config event.
	PublishTimeout time.Duration
	// HealthTimeout bounds each dependency check of GET /health.
	HealthTimeout time.Duration
	// BodyLimit is the largest request body accepted, in bytes.
	BodyLimit int
	// LagThreshold is how far behind its source (lag_seconds) a
	// destination may be before it is LAGGING (DefaultLagThreshold).
	LagThreshold time.Duration
	// AllowedOrigins are web origins (https://console.example.com) allowed
	// to call the API from a browser, with CORS; others are refused.
	AllowedOrigins []string
	// TLSCertFile and TLSKeyFile, both set, make Listen serve HTTPS only
	// (ROSETTA_HTTP_TLS_CERT/_KEY), reloading the files when they change.
	TLSCertFile, TLSKeyFile string
	// DuckDBRoots are the directories DuckDB destination files may be in
	// (ROSETTA_DUCKDB_ROOTS, default the data dir); empty confines none.
	DuckDBRoots []string
	// KeysDir is the directory Snowflake private_key_path and tls_ca_file
	// files must be in (ROSETTA_KEYS_DIR); empty refuses both.
	KeysDir string
	// Outbound limits the requests that connect to sources and
	// destinations (429 beyond it); zero fields take the defaults.
	Outbound OutboundLimits
	// DestinationTypes are the destination types POST /destinations
	// accepts, with their config fields (GET /destination-types); the
	// composition root provides them (builtin.Types()).
	DestinationTypes desttype.Types
	// DestinationCheckers check destinations of other types than postgres
	// on POST and PUT /destinations, each within CheckTimeout; nil checks
	// only the shape of their config. NewFromParams sets them from
	// DestinationTypes.
	DestinationCheckers DestinationCheckers
	// LiveCheckers serve POST /destinations/{id}/check-live by type; a
	// type without one answers 422.
	LiveCheckers DestinationLiveCheckers
}

// DefaultConfig returns the defaults: 127.0.0.1:8080, 30s per request,
// 10s per connection check, 5s per publish, 2s per health check, 1 MiB
// bodies, LAGGING past 60s.
func DefaultConfig() Config {
	return Config{
		Addr:           "127.0.0.1:8080",
		RequestTimeout: 30 * time.Second,
		CheckTimeout:   10 * time.Second,
		PublishTimeout: 5 * time.Second,
		HealthTimeout:  2 * time.Second,
		BodyLimit:      1 << 20,
		LagThreshold:   DefaultLagThreshold,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = d.CheckTimeout
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = d.PublishTimeout
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = d.HealthTimeout
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = d.BodyLimit
	}
	if c.LagThreshold <= 0 {
		c.LagThreshold = d.LagThreshold
	}
	return c
}

// Pinger is a dependency GET /health checks, such as Redis (see
// RedisPinger).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Server is the API: a Fiber app and, once Listen is called, its listener.
type Server struct {
	cfg   Config
	store *configstore.Store
	js    jetstream.JetStream
	redis Pinger
	dlq   DeadLetters // nil: dead-letter queues disabled
	wal   WALSamples  // nil: WAL monitoring samples unavailable
	// queries serves POST /destinations/{id}/query; nil answers 409.
	queries DuckDBQuerier
	// verifyQueries reaches DuckDB destination files through the process
	// that holds them (verify); nil opens them here.
	verifyQueries *destquery.Querier
	log           *slog.Logger
	app           *fiber.App
	outbound      *outboundLimiter
	// tapJS reads the live tail (UseTap); nil uses js.
	tapJS jetstream.JetStream
	// streams is the context of long-lived responses (the live tail):
	// Shutdown cancels it, so they end instead of holding the shutdown.
	streams     context.Context
	stopStreams context.CancelFunc

	mu    sync.Mutex
	ln    net.Listener
	serve chan struct{} // closed when the serving goroutine returns
}

// New builds the server. redis may be nil when no Redis is configured.
// Nothing listens until Listen; App serves requests without a listener
// (app.Test).
func New(cfg Config, store *configstore.Store, js jetstream.JetStream, redis Pinger, log *slog.Logger) (*Server, error) {
	if store == nil || js == nil || log == nil {
		return nil, errors.New("new api server: store, jetstream and logger are required")
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, store: store, js: js, redis: redis, log: log, outbound: newOutboundLimiter(cfg.Outbound)}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.app = fiber.New(fiber.Config{
		AppName:               "rosetta",
		DisableStartupMessage: true,
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           cfg.RequestTimeout,
		WriteTimeout:          cfg.RequestTimeout,
		IdleTimeout:           2 * time.Minute,
		ErrorHandler:          s.handleError,
	})
	if err := s.routes(); err != nil {
		return nil, err
	}
	return s, nil
}

// App is the Fiber app, for tests (App().Test) or for mounting elsewhere.
func (s *Server) App() *fiber.App { return s.app }

func (s *Server) routes() error {
	s.app.Use(s.recoverPanic, s.logRequests, s.withTimeout, s.browserGuard)
	const v1 = "/api/v1"
	for _, r := range []struct {
		method, path string
		h            fiber.Handler
	}{
		{"GET", "/health", s.health},
		{"GET", "/ready", s.ready},
		{"GET", "/whoami", s.whoami},
		{"POST", "/tokens", s.createToken},
		{"GET", "/tokens", s.listTokens},
		{"DELETE", "/tokens/:id", s.revokeToken},
		{"GET", "/audit", s.listAudit},
		{"GET", "/metrics/wal", s.getWALMetrics},
		{"GET", "/status", s.getStatus},
		{"POST", "/sources", s.createSource},
		{"GET", "/sources", s.listSources},
		{"GET", "/sources/:id", s.getSource},
		{"GET", "/sources/:id/tables", s.listSourceTables},
		{"PUT", "/sources/:id", s.updateSource},
		{"DELETE", "/sources/:id", s.deleteSource},
		{"GET", "/destination-types", s.listDestinationTypes},
		{"POST", "/destinations/check", s.checkDestinationConfig},
		{"POST", "/destinations", s.createDestination},
		{"GET", "/destinations", s.listDestinations},
		{"GET", "/destinations/:id", s.getDestination},
		{"PUT", "/destinations/:id", s.updateDestination},
		{"DELETE", "/destinations/:id", s.deleteDestination},
		{"POST", "/destinations/:id/query", s.queryDestination},
		{"POST", "/destinations/:id/check-live", s.checkDestinationLive},
		{"POST", "/pipelines", s.createPipeline},
		{"GET", "/pipelines", s.listPipelines},
		{"GET", "/pipelines/:id", s.getPipeline},
		{"PUT", "/pipelines/:id", s.updatePipeline},
		{"DELETE", "/pipelines/:id", s.deletePipeline},
		{"POST", "/pipelines/:id/start", s.startPipeline},
		{"POST", "/pipelines/:id/pause", s.pausePipeline},
		{"POST", "/pipelines/:id/refresh", s.refreshPipeline},
		{"POST", "/pipelines/:id/backfill", s.createBackfill},
		{"POST", "/pipelines/:id/verify", s.verifyPipeline},
		{"GET", "/pipelines/:id/backfill", s.listBackfills},
		{"GET", "/pipelines/:id/tail", s.tailPipeline},
		{"GET", "/backfill/:job_id", s.getBackfill},
		{"POST", "/backfill/:job_id/cancel", s.cancelBackfill},
		{"GET", "/pipelines/:id/dlq", s.getPipelineDLQ},
		{"GET", "/pipelines/:id/destinations/:destination_id/dlq", s.listDLQ},
		{"POST", "/pipelines/:id/destinations/:destination_id/recover-dlq", s.recoverDLQ},
		{"GET", "/pipelines/:id/destinations/:destination_id/dlq/recoveries/:recovery_id", s.getRecovery},
		{"POST", "/pipelines/:id/destinations/:destination_id/discard-dlq", s.discardDLQ},
	} {
		if err := s.handle(r.method, v1+r.path, r.h); err != nil {
			return err
		}
	}
	return nil
}

// Listen binds cfg.Addr and serves in the background until Shutdown. A
// bind failure (port taken) is returned, so a service fails to start with
// a clear error. It also makes sure the config event stream exists; if
// NATS is unavailable that is logged, not fatal (publishing retries it).
func (s *Server) Listen(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("api: already listening")
	}
	var certs *certReloader
	if s.cfg.TLSCertFile != "" || s.cfg.TLSKeyFile != "" {
		var err error
		if certs, err = newCertReloader(s.cfg.TLSCertFile, s.cfg.TLSKeyFile, s.log); err != nil {
			return fmt.Errorf("api: %w", err)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s (is another process using this port? set ROSETTA_HTTP_ADDR or --http-addr): %w", s.cfg.Addr, err)
	}
	if certs != nil {
		ln = tls.NewListener(ln, certs.tlsConfig())
	}
	// Bounded: a NATS that is down must not hold up the start (the
	// caller's ctx may allow minutes).
	ectx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	err = natsx.EnsureConfigStream(ectx, s.js)
	cancel()
	if err != nil {
		s.log.Warn("config event stream not ready; publishing will create it", "error", err)
	}
	s.ln = ln
	s.serve = make(chan struct{})
	go func() {
		defer close(s.serve)
		if err := s.app.Listener(ln); err != nil {
			s.log.Error("api server stopped", "error", err)
		}
	}()
	s.log.Info("api listening", "addr", ln.Addr().String(), "tls", certs != nil)
	return nil
}

// loopbackOnly reports whether the server listens on a loopback address
// only, where requests must be addressed to loopback (browserGuard).
func (s *Server) loopbackOnly() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return false
	}
	a, ok := s.ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// Addr is the address Listen bound, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops accepting connections, waits for in-flight requests until
// ctx ends, and waits for the serving goroutine to return.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	serve := s.serve
	s.mu.Unlock()
	s.stopStreams()
	err := s.app.ShutdownWithContext(ctx)
	if serve != nil {
		select {
		case <-serve:
		case <-ctx.Done():
			return fmt.Errorf("api: shutdown: %w", ctx.Err())
		}
	}
	if err != nil {
		return fmt.Errorf("api: shutdown: %w", err)
	}
	return nil
}

// UseVerifyQueries makes verify read DuckDB destination files through q.
func (s *Server) UseVerifyQueries(q *destquery.Querier) { s.verifyQueries = q }

// withTimeout gives each request a context bounded by RequestTimeout.
func (s *Server) withTimeout(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	return c.Next()
}

// logRequests logs method, path, status and duration — never bodies or
// query strings, which may hold secrets.
func (s *Server) logRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		var fe *fiber.Error
		var ae *apiError
		switch {
		case errors.As(err, &ae):
			status = ae.status
		case errors.As(err, &fe):
			status = fe.Code
		default:
			status = fiber.StatusInternalServerError
		}
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(c.UserContext(), level, "http request", "method", c.Method(), "path", c.Path(), "status", status,
		"duration_ms", time.Since(start).Milliseconds())
	return err
}

func (s *Server) recoverPanic(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving request", "method", c.Method(), "path", c.Path(), "panic", fmt.Sprint(r))
			err = &apiError{status: fiber.StatusInternalServerError, msg: "internal error"}
		}
	}()
	return c.Next()
}
