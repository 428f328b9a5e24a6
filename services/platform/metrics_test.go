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
