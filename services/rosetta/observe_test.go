package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/services/api"
	"github.com/rosettacdc/rosetta/services/capture"
	"github.com/rosettacdc/rosetta/services/platform"
	"github.com/rosettacdc/rosetta/services/sink"
	"github.com/rosettacdc/rosetta/services/sink/drivers/builtin"
)

// TestObserveRunningPipeline runs api, capture and sink in one process (as
// `rosetta dev` does) over a real source and checks what an operator sees:
// a row inserted in the source is printed by `rosetta tail`, /metrics
// counts it captured and applied, and the WAL monitor records the slot.
func TestObserveRunningPipeline(t *testing.T) {
	t.Setenv(settings.EnvWALMonitorInterval, "300ms")
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	cfgDB := pg.CreateDatabase(t, "cfg")
	srcDB := pg.CreateDatabase(t, "src")
	dstDB := pg.CreateDatabase(t, "dst")
	pg.Exec(t, srcDB, "CREATE TABLE public.orders (id bigint PRIMARY KEY, title text)")

	s := settings.Default()
	s.ConfigDSN = pg.DSN(cfgDB)
	s.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	s.NATSURL = n.URL
	s.DataDir = t.TempDir()
	s.SecretKey = "observe-test-secret-key-0123456789"
	s.ReconcileInterval = time.Second
	s.SinkBatchWait = 50 * time.Millisecond
	if _, err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app := fx.New(
		fx.Supply(log, settings.Access{APIToken: testAPIToken}, builtin.Types()),
		platform.Module(&s),
		fx.Provide(
			fx.Annotate(asStore, fx.As(new(capture.ConfigStore))),
			fx.Annotate(asStore, fx.As(new(sink.ConfigStore))),
		),
		api.Module, capture.Module, sink.Module,
		fx.NopLogger,
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		_ = app.Stop(sctx)
	})

	base := "http://" + s.HTTPAddr
	call := apiCaller(t, base)
	var src, dst, pipe struct {
		ID int64 `json:"id"`
	}
	call("POST", "/api/v1/sources", map[string]any{"name": "src", "host": pg.Host(), "port": pg.Port,
		"database": srcDB, "user": "postgres", "sslmode": "disable"}, &src)
	call("POST", "/api/v1/destinations", map[string]any{"name": "dst", "type": "postgres", "config": map[string]any{
		"host": pg.Host(), "port": pg.Port, "database": dstDB, "user": "postgres", "sslmode": "disable"}}, &dst)
	call("POST", "/api/v1/pipelines", map[string]any{"name": "p", "source_id": src.ID,
		"destination_ids": []int64{dst.ID}, "tables": []string{"public.orders"}}, &pipe)
	call("POST", fmt.Sprintf("/api/v1/pipelines/%d/start", pipe.ID), nil, nil)

	// Capture streams (slot, publication and stream in place) once the
	// source reports RUNNING.
	waitFor(t, func() bool {
		var d struct {
			SourceState struct {
				State string `json:"state"`
			} `json:"source_state"`
		}
		call("GET", fmt.Sprintf("/api/v1/pipelines/%d", pipe.ID), nil, &d)
		return d.SourceState.State == "RUNNING"
	})
	_, js := n.Connect(t)
	out, wait := startTail(t, fmt.Sprintf("%d.public.orders", src.ID), "--nats-url", n.URL, "-n", "1")
	waitFor(t, func() bool { return consumerCount(t, js, src.ID) >= 2 }) // the pipeline's and tail's
	pg.Exec(t, srcDB, "INSERT INTO public.orders VALUES (1, 'first')")
	if err := wait(); err != nil {
		t.Fatalf("tail: %v", err)
	}
	if got := out.String(); !strings.Contains(got, "  c  public.orders  id=1  id,title") {
		t.Fatalf("tail printed %q", got)
	}

	scrape := func() string {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+testAPIToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	captured := fmt.Sprintf(`rosetta_capture_changes_total{source_id="%d",table="public.orders"} 1`, src.ID)
	applied := fmt.Sprintf(`rosetta_sink_changes_applied_total{destination_id="%d",pipeline_id="%d",table="public.orders"} 1`, dst.ID, pipe.ID)
	waitFor(t, func() bool {
		m := scrape()
		return strings.Contains(m, captured) && strings.Contains(m, applied)
	})

	var wal struct {
		Samples []struct {
			RetainedBytes *int64  `json:"retained_bytes"`
			WALStatus     *string `json:"wal_status"`
			Error         string  `json:"error"`
		} `json:"samples"`
	}
	waitFor(t, func() bool {
		call("GET", fmt.Sprintf("/api/v1/metrics/wal?source_id=%d", src.ID), nil, &wal)
		for _, x := range wal.Samples {
			if x.Error == "" && x.RetainedBytes != nil && x.WALStatus != nil {
				return true
			}
		}
		return false
	})
}
