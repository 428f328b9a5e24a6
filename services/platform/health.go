package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

// Probe paths of the health listener of `rosetta capture` and `rosetta
// sink` (the API answers GET /api/v1/health on its own address instead).
const (
	// LivenessPath answers 200 while the process serves HTTP: an
	// orchestrator restarts a process that stops answering. It checks no
	// dependency, so an outage of PostgreSQL or NATS does not restart
	// every capture and sink at once (they wait and reconnect by
	// themselves).
	LivenessPath = "/livez"
	// ReadinessPath answers 200 when the process is connected to NATS and
	// its config database answers, 503 with the reason otherwise.
	ReadinessPath = "/readyz"
)

// HealthModule serves LivenessPath and ReadinessPath on
// settings.HealthAddr, when it is set; rosetta capture and rosetta sink
// include it. The listener is unauthenticated and says only up or down.
var HealthModule = fx.Module("health", fx.Invoke(serveHealth))

// pinger is the part of the config store readiness uses.
type pinger interface {
	Ping(ctx context.Context) error
}

var _ pinger = (*configstore.Store)(nil)

// HealthHandler answers the two probes: NATS's connection state and a
// config database ping bounded by timeout.
func HealthHandler(nc *nats.Conn, db pinger, timeout time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+LivenessPath, func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET "+ReadinessPath, func(w http.ResponseWriter, r *http.Request) {
		var problems []error
		if st := nc.Status(); st != nats.CONNECTED {
			problems = append(problems, fmt.Errorf("nats: %s", st))
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			problems = append(problems, errors.New("config db: not answering"))
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, errors.Join(problems...))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

type healthParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	Settings  *settings.Settings
	Conn      *nats.Conn
	Store     *configstore.Store
	Log       *slog.Logger
}

func serveHealth(p healthParams) {
	if p.Settings.HealthAddr == "" {
		return
	}
	srv := &http.Server{Handler: HealthHandler(p.Conn, p.Store, 2*time.Second), ReadHeaderTimeout: 5 * time.Second}
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", p.Settings.HealthAddr)
			if err != nil {
				return fmt.Errorf("health: listen on %s (%s): %w", p.Settings.HealthAddr, settings.EnvHealthAddr, err)
			}
			// Owned by the lifecycle: OnStop shuts it down.
			go func() {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					p.Log.Error("health listener stopped", "error", err)
				}
			}()
			p.Log.Info("serving health probes", "addr", ln.Addr().String(), "liveness", LivenessPath, "readiness", ReadinessPath)
			return nil
		},
		OnStop: func(ctx context.Context) error { return srv.Shutdown(ctx) },
	})
}
