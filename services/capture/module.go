package capture

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

// Module runs the capture service inside an fx application. It needs a
// *settings.Settings, a ConfigStore, a jetstream.JetStream and a
// *slog.Logger.
var Module = fx.Module("capture", fx.Provide(newFromFx), fx.Invoke(runWithLifecycle), fx.Invoke(runWALMonitor))

// Params are the capture module's dependencies.
type Params struct {
	fx.In
	Settings *settings.Settings
	Store    ConfigStore
	JS       jetstream.JetStream
	Log      *slog.Logger
	Metrics  *metrics.Metrics `optional:"true"`
}

func newFromFx(p Params) (*Manager, error) {
	cfg := DefaultConfig()
	if p.Settings.ReconcileInterval > 0 {
		cfg.ReconcileInterval = p.Settings.ReconcileInterval
	}
	if p.Settings.StreamMaxBytes > 0 {
		cfg.StreamLimits.MaxBytes = p.Settings.StreamMaxBytes
	}
	cfg.StreamLimits.Duplicates = p.Settings.DuplicateWindow()
	cfg.StreamLimits.Replicas = p.Settings.StreamReplicas
	cfg.ConfirmDelay = p.Settings.ConfirmDelay()
	if p.Settings.CaptureReceiveTimeout > 0 {
		cfg.ReceiveTimeout = p.Settings.CaptureReceiveTimeout
	}
	cfg.Streaming = p.Settings.CaptureStreaming
	cfg.SpoolDir = p.Settings.CaptureSpoolDir
	cfg.BackfillOnRewrite = p.Settings.CaptureBackfillOnRewrite
	if p.Metrics != nil {
		cfg.Metrics = p.Metrics
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return NewManager(cfg, p.Store, p.JS, p.Log.With("service", "capture")), nil
}

// runWithLifecycle starts the manager on start and, on stop, cancels it and
// waits until its workers drained and confirmed (or the stop deadline).
func runWithLifecycle(lc fx.Lifecycle, m *Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				if err := m.Run(ctx); err != nil {
					m.log.Error("capture stopped with an error", "error", err)
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
