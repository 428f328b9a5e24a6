package platform

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/walmonitor"
)

// consumerPollInterval is how often consumer pending counts and dead-letter
// depth are refreshed.
const consumerPollInterval = 15 * time.Second

func newObservability() (settings.Observability, error) {
	return settings.LoadObservability()
}

// MetricsParams are the dependencies of the process's metrics.
type MetricsParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	Obs       settings.Observability
	JS        jetstream.JetStream
	Redis     *redis.Client `optional:"true"`
	Log       *slog.Logger
}

// newMetrics builds the process's registry and collectors, polls consumer
// and dead-letter gauges while the app runs and, when ROSETTA_METRICS_ADDR
// is set, serves /metrics there (the API serves it on its own address too).
func newMetrics(p MetricsParams) (*metrics.Metrics, error) {
	m := metrics.New()
	poller := &metrics.Poller{M: m, JS: p.JS, Every: consumerPollInterval, Log: p.Log}
	if p.Redis != nil {
		q, err := dlq.New(p.Redis, dlq.DefaultConfig())
		if err != nil {
			return nil, fmt.Errorf("metrics: dlq: %w", err)
		}
		poller.DLQ = q
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var srv *http.Server
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(context.Context) error {
			if p.Obs.MetricsAddr != "" {
				ln, err := net.Listen("tcp", p.Obs.MetricsAddr)
				if err != nil {
					cancel()
					close(done)
					return fmt.Errorf("metrics: listen on %s (%s): %w", p.Obs.MetricsAddr, settings.EnvMetricsAddr, err)
				}
				mux := http.NewServeMux()
				mux.Handle("/metrics", m.Handler())
				if p.Obs.Pprof {
					mux.HandleFunc("/debug/pprof/", pprof.Index)
					mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
					mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
					mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
				}
				var h http.Handler = mux
				if p.Obs.MetricsToken != "" {
					h = requireBearer(p.Obs.MetricsToken, mux)
				} else if !loopbackListener(ln) {
					p.Log.Warn("metrics served without a token on an address other than loopback; set "+settings.EnvMetricsToken+" unless the network is private",
						"addr", ln.Addr().String())
				}
				srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
				go func() {
					if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
						p.Log.Error("metrics server stopped", "error", err)
					}
				}()
				p.Log.Info("serving metrics", "addr", ln.Addr().String())
			}
			go func() {
				defer close(done)
				poller.Run(ctx)
			}()
			return nil
		},
		OnStop: func(stop context.Context) error {
			cancel()
			var err error
			if srv != nil {
				err = srv.Shutdown(stop)
			}
			select {
			case <-done:
			case <-stop.Done():
				return stop.Err()
			}
			return err
		},
	})
	return m, nil
}

// requireBearer answers 401 to requests without "Authorization: Bearer
// <token>" (compared in constant time).
func requireBearer(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rosetta metrics"`)
			http.Error(w, "send the metrics token ("+settings.EnvMetricsToken+") as Authorization: Bearer <token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackListener(ln net.Listener) bool {
	a, ok := ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// newWALStore opens the store of WAL monitoring samples (the wal_metrics
// table of the config DB, which newStore migrates). Capture records into
// it; the API reads it.
func newWALStore(lc fx.Lifecycle, s *settings.Settings, _ *configstore.Store) (*walmonitor.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := walmonitor.OpenStore(ctx, s.ConfigDSN)
	if err != nil {
		return nil, fmt.Errorf("open config db for wal samples (%s): %w", settings.EnvConfigDSN, err)
	}
	lc.Append(fx.StopHook(st.Close))
	return st, nil
}
