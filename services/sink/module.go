package sink

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

// Module runs the sink service inside an fx application. It needs a
// *settings.Settings, a ConfigStore, a jetstream.JetStream and a
// *slog.Logger, and uses a *redis.Client when one is provided (platform
// provides it when ROSETTA_REDIS_URL is set): runners then dead-letter the
// changes a destination rejects, and recoveries are replayed when the
// ConfigStore is also a RecoveryStore (*configstore.Store is). Without
// Redis, rejected changes are retried with the error in the destination's
// health.
var Module = fx.Module("sink", fx.Provide(newFromFx), fx.Invoke(runWithLifecycle, serveQueries))

// serveQueries answers, over NATS, queries on the DuckDB files this
// process's sinks hold, for as long as the app runs.
func serveQueries(lc fx.Lifecycle, p Params) {
	if p.Queries == nil || p.NC == nil {
		return
	}
	var stop func()
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			s, err := p.Queries.Serve(p.NC)
			if err != nil {
				return fmt.Errorf("sink: serve duckdb queries: %w", err)
			}
			stop = s
			return nil
		},
		OnStop: func(context.Context) error {
			if stop != nil {
				stop()
			}
			return nil
		},
	})
}

// Params are the sink module's dependencies.
type Params struct {
	fx.In
	Settings *settings.Settings
	Store    ConfigStore
	JS       jetstream.JetStream
	Log      *slog.Logger
	Redis    *redis.Client    `optional:"true"`
	Metrics  *metrics.Metrics `optional:"true"`
	// Queries, when provided with NC, is where the runners record the
	// DuckDB files they hold; the module answers queries on them over NC
	// (pkg/destquery) for the other processes.
	Queries *destquery.Registry `optional:"true"`
	NC      *nats.Conn          `optional:"true"`
	// Types are the destination types whose drivers the sink opens
	// (services/rosetta supplies builtin.Types()); without them,
	// BuiltinDrivers.
	Types desttype.Types `optional:"true"`
}

func newFromFx(p Params) (*Manager, error) {
	cfg := DefaultConfig()
	if p.Settings.SinkBatchSize > 0 {
		cfg.Runner.BatchSize = p.Settings.SinkBatchSize
	}
	if p.Settings.SinkBatchWait > 0 {
		cfg.Runner.BatchWait = p.Settings.SinkBatchWait
	}
	if p.Settings.SinkApplyTimeout > 0 {
		cfg.Runner.ApplyTimeout = p.Settings.SinkApplyTimeout
	}
	if p.Metrics != nil {
		// Also the runners' GuardObserver (tombstone collections), through
		// the manager's progress observer.
		cfg.Runner.Observer = p.Metrics
	}
	if p.Settings.ReconcileInterval > 0 {
		cfg.ReconcileInterval = p.Settings.ReconcileInterval
	}
	cfg.Destinations = p.Settings.SinkDestinations
	if p.Types != nil {
		cfg.Drivers = DriversOf(p.Types)
	}
	cfg.DLQ.Retention = dlq.Retention{MaxEntries: p.Settings.DLQMaxEntries, MaxAge: p.Settings.DLQMaxAge}
	if p.Metrics != nil {
		cfg.DLQ.TrimObserver = p.Metrics
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := p.Log.With("service", "sink")
	if len(cfg.Destinations) > 0 {
		log.Info("running the sinks of some destinations only", "destinations", cfg.Destinations)
	}
	if p.Redis == nil {
		log.Info("dead-letter queue disabled: set ROSETTA_REDIS_URL to dead-letter the changes a destination rejects; until then they are retried")
		m := NewManager(cfg, p.Store, p.JS, log)
		m.ServeQueries(p.Queries)
		return m, nil
	}
	q, err := dlq.New(p.Redis, cfg.DLQ.Queue)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	rs, ok := p.Store.(RecoveryStore)
	if !ok {
		log.Warn("the config store cannot hold dlq recoveries; dead letters are kept but never replayed")
	}
	m := NewManagerWithDLQ(cfg, p.Store, p.JS, q, rs, log)
	m.ServeQueries(p.Queries)
	return m, nil
}

// runWithLifecycle runs the manager from OnStart with its own context; OnStop
// cancels it and waits until every runner stopped (or the stop deadline). A
// sink stopping mid-batch does not ack it, which is safe: it is redelivered.
func runWithLifecycle(lc fx.Lifecycle, m *Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				if err := m.Run(ctx); err != nil {
					m.log.Error("sink stopped with an error", "error", err)
				}
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
