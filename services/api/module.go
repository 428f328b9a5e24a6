package api

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/walmonitor"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

// Module runs the API: it listens on Settings.HTTPAddr when the app starts
// (failing the start if the address is taken) and shuts down gracefully
// when it stops.
var Module = fx.Module("api",
	fx.Provide(NewFromParams),
	// Asking for the server makes fx build it, which registers its hooks.
	fx.Invoke(func(*Server) {}),
)

// Params are the API's dependencies under fx.
type Params struct {
	fx.In
	Lifecycle fx.Lifecycle
	Settings  *settings.Settings
	Store     *configstore.Store
	JS        jetstream.JetStream
	Log       *slog.Logger
	Redis     *redis.Client `optional:"true"`
	// Types are the destination types the API accepts and checks (see
	// Config.DestinationTypes); the composition root provides them
	// (builtin.Types()). Without them no destination type is accepted.
	Types desttype.Types `optional:"true"`
	// LiveCheckers serve POST /destinations/{id}/check-live.
	LiveCheckers DestinationLiveCheckers `optional:"true"`
	// Metrics are served on GET /metrics when provided.
	Metrics *metrics.Metrics `optional:"true"`
	// WAL serves GET /api/v1/metrics/wal when provided.
	WAL *walmonitor.Store `optional:"true"`
	// Obs sets the LAGGING threshold (ROSETTA_LAG_THRESHOLD).
	Obs settings.Observability `optional:"true"`
	// Queries and NATS serve read-only queries on DuckDB destinations
	// through the process holding each file (pkg/destquery).
	Queries *destquery.Registry `optional:"true"`
	NC      *nats.Conn          `optional:"true"`
	// Tap reads the live tail as the tap user (embedded NATS only).
	Tap *natsx.Tap `optional:"true"`
	// Console is the admin console served at "/"; without it "/" is 404.
	Console *Console `optional:"true"`
	// Access holds the bootstrap token (ROSETTA_API_TOKEN).
	Access settings.Access `optional:"true"`
}

// Console is the admin console's built files (web.Console), supplied by
// the composition root so that this package does not depend on the front
// end.
type Console struct {
	Files fs.FS
	// Built is false when the binary was compiled before the front end:
	// "/" then says how to build it.
	Built bool
}

// lagGaugeInterval is how often the API records every destination's lag
// into the Prometheus gauges (like the consumer gauges' poll).
const lagGaugeInterval = 15 * time.Second

// NewFromParams builds the server from fx parameters and ties it to the
// app's lifecycle.
func NewFromParams(p Params) (*Server, error) {
	cfg := DefaultConfig()
	cfg.Addr = p.Settings.HTTPAddr
	cfg.DestinationTypes = p.Types
	cfg.DestinationCheckers = checkersOf(p.Types)
	cfg.LiveCheckers = p.LiveCheckers
	cfg.LagThreshold = p.Obs.LagThreshold // zero: the default
	cfg.AllowedOrigins = p.Access.AllowedOrigins
	cfg.TLSCertFile, cfg.TLSKeyFile = p.Access.TLSCertFile, p.Access.TLSKeyFile
	cfg.DuckDBRoots, cfg.KeysDir = p.Access.DuckDBRoots, p.Access.KeysDir
	if len(cfg.DuckDBRoots) == 0 && p.Settings.DataDir != "" {
		cfg.DuckDBRoots = []string{p.Settings.DataDir}
	}
	var pinger Pinger
	if p.Redis != nil {
		pinger = RedisPinger(p.Redis)
	}
	s, err := New(cfg, p.Store, p.JS, pinger, p.Log.With("service", "api"))
	if err != nil {
		return nil, err
	}
	if p.Redis != nil {
		q, err := dlq.New(p.Redis, dlq.DefaultConfig())
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		s.UseDeadLetters(q)
	}
	s.UseMetrics(p.Metrics)
	// Verify reads DuckDB destinations through their holder too.
	s.UseVerifyQueries(destquery.NewQuerier(p.Queries, p.NC))
	if p.WAL != nil {
		s.UseWALMetrics(p.WAL)
	}
	if p.Queries != nil || p.NC != nil {
		s.UseDuckDBQueries(destquery.NewQuerier(p.Queries, p.NC))
	}
	if p.Tap != nil {
		s.UseTap(p.Tap.JS)
	}
	if p.Console != nil {
		s.UseConsole(p.Console.Files, p.Console.Built)
	}
	p.Lifecycle.Append(fx.Hook{OnStart: func(ctx context.Context) error {
		if err := s.Bootstrap(ctx, p.Access.APIToken); err != nil {
			return err
		}
		return s.Listen(ctx)
	}, OnStop: s.Shutdown})
	if p.Metrics != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		p.Lifecycle.Append(fx.Hook{
			OnStart: func(context.Context) error {
				// Owned by the lifecycle: OnStop cancels it and waits.
				go func() {
					defer close(done)
					s.RunLagGauges(ctx, p.Metrics, lagGaugeInterval)
				}()
				return nil
			},
			OnStop: func(stop context.Context) error {
				cancel()
				select {
				case <-done:
					return nil
				case <-stop.Done():
					return stop.Err()
				}
			},
		})
	}
	return s, nil
}
