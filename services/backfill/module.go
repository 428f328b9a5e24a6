package backfill

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// Module runs the backfill worker inside an fx application. It needs a
// *configstore.Store, a *nats.Conn and a *slog.Logger.
var Module = fx.Module("backfill", fx.Provide(newFromFx), fx.Invoke(runWithLifecycle))

// Params are the module's dependencies.
type Params struct {
	fx.In
	Store *configstore.Store
	Conn  *nats.Conn
	Log   *slog.Logger
}

func newFromFx(p Params) (*Worker, error) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return New(cfg, p.Store, p.Conn, p.Log.With("service", "backfill")), nil
}

// runWithLifecycle runs the worker from start to stop; stopping cancels it
// and waits until its runners handed their jobs back.
func runWithLifecycle(lc fx.Lifecycle, w *Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				_ = w.Run(ctx)
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
