package platform

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestMetricsAddr: with ROSETTA_METRICS_ADDR set, a process without the API
// serves its registry there while the app runs, and stops serving on stop.
func TestMetricsAddr(t *testing.T) {
	_, js := testkit.StartNATS(t).Connect(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	var m *metrics.Metrics
	app := fx.New(
		fx.Supply(slog.New(slog.DiscardHandler), settings.Observability{MetricsAddr: addr}),
		fx.Provide(func() jetstream.JetStream { return js }, newMetrics),
		fx.Populate(&m),
		fx.NopLogger,
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	m.ChangePublished(9, "public", "t")
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `rosetta_capture_changes_total{source_id="9",table="public.t"} 1`) {
		t.Fatalf("/metrics:\n%s", body)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Fatal("still serving after stop")
	}
}

// TestMetricsToken: with a metrics token, /metrics and the profiler on
// ROSETTA_METRICS_ADDR answer only requests bearing it.
func TestMetricsToken(t *testing.T) {
	_, js := testkit.StartNATS(t).Connect(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	app := fx.New(
		fx.Supply(slog.New(slog.DiscardHandler), settings.Observability{MetricsAddr: addr, Pprof: true, MetricsToken: "scrape-me"}),
		fx.Provide(func() jetstream.JetStream { return js }, newMetrics),
		fx.Invoke(func(*metrics.Metrics) {}),
		fx.NopLogger,
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer app.Stop(ctx)
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		for _, tt := range []struct {
			auth string
			want int
		}{{"", 401}, {"Bearer wrong", 401}, {"scrape-me", 401}, {"Bearer scrape-me", 200}} {
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s with %q = %d, want %d", path, tt.auth, resp.StatusCode, tt.want)
			}
		}
	}
}

func TestPprofOffLoopbackNeedsToken(t *testing.T) {
	for _, tt := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:9090", "", true},
		{"localhost:9090", "", true},
		{":9090", "", false},
		{"0.0.0.0:9090", "", false},
		{"10.0.0.5:9090", "", false},
		{":9090", "t", true},
	} {
		t.Setenv(settings.EnvMetricsAddr, tt.addr)
		t.Setenv(settings.EnvPprof, "1")
		t.Setenv(settings.EnvMetricsToken, tt.token)
		_, err := settings.LoadObservability()
		if (err == nil) != tt.ok {
			t.Errorf("pprof on %s with token %q: err = %v", tt.addr, tt.token, err)
		}
	}
}
