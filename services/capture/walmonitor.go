package capture

import (
	"context"
	"log/slog"

	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/walmonitor"
)

// walMonitorParams are the WAL monitor's dependencies; without a sample
// store (an app without platform.Module) it does not run.
type walMonitorParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	Store     ConfigStore
	Log       *slog.Logger
	Samples   *walmonitor.Store      `optional:"true"`
	Obs       settings.Observability `optional:"true"`
	Metrics   *metrics.Metrics       `optional:"true"`
}

// runWALMonitor runs the WAL monitor beside capture: every
// ROSETTA_WAL_MONITOR_INTERVAL it checks each source's slot (see
// pkg/walmonitor). It watches every source, captured or not.
func runWALMonitor(p walMonitorParams) {
	if p.Samples == nil {
		return
	}
	var cfg walmonitor.Config
	// Zero values (no Observability provided) keep the defaults.
	cfg.Interval = p.Obs.WALMonitorInterval
	cfg.Retention = p.Obs.WALRetention
	var obs walmonitor.Observer
	if p.Metrics != nil {
		obs = p.Metrics
	}
	mon := walmonitor.New(cfg, p.Store, p.Samples, obs, p.Log.With("service", "capture"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				_ = mon.Run(ctx) // returns nil when ctx ends
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
