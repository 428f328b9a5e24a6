package sink

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

// Module runs the sink service inside an fx application. It needs a
// *settings.Settings, a ConfigStore, a jetstream.JetStream and a
// *slog.Logger, and uses a *redis.Client when one is provided (platform
// provides it when ROSETTA_REDIS_URL is set): runners then dead-letter the
// changes a destination rejects, and recoveries are replayed when the
// ConfigStore is also a RecoveryStore (*configstore.Store is). Without
// Redis, rejected changes are retried with the error in the destination's
// health.
var Module = fx.Module("sink", fx.Provide(newFromFx), fx.Invoke(runWithLifecycle))

// Params are the sink module's dependencies.
type Params struct {
	fx.In
	Settings *settings.Settings
	Store    ConfigStore
	JS       jetstream.JetStream
	Log      *slog.Logger
	Redis    *redis.Client    `optional:"true"`
	Metrics  *metrics.Metrics `optional:"true"`
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
		cfg.Runner.Observer = p.Metrics
	}
	if p.Settings.ReconcileInterval > 0 {
		cfg.ReconcileInterval = p.Settings.ReconcileInterval
	}
	if p.Settings.StreamMaxBytes > 0 {
		cfg.StreamLimits.MaxBytes = p.Settings.StreamMaxBytes
	}
	cfg.StreamLimits.Duplicates = p.Settings.DuplicateWindow()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := p.Log.With("service", "sink")
	if p.Redis == nil {
		log.Info("dead-letter queue disabled: set ROSETTA_REDIS_URL to dead-letter the changes a destination rejects; until then they are retried")
		return NewManager(cfg, p.Store, p.JS, log), nil
	}
	q, err := dlq.New(p.Redis, cfg.DLQ.Queue)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	rs, ok := p.Store.(RecoveryStore)
	if !ok {
		log.Warn("the config store cannot hold dlq recoveries; dead letters are kept but never replayed")
	}
	return NewManagerWithDLQ(cfg, p.Store, p.JS, q, rs, log), nil
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
