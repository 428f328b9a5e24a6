package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard/guardtest"
)

// TestCollectAfterCatchingUp: a collection that finds the consumer behind
// is tried again once the runner has caught up, not only at the next
// interval. The interval here is an hour: only the retry can collect.
func TestCollectAfterCatchingUp(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	ctx := context.Background()
	const source, pipeline, dest, keys = guardtest.ItemsSource, guardtest.ItemsPipeline, guardtest.ItemsDest, 10000
	js, cons := guardtest.ItemsConsumer(t, 0)
	// Every change is in the stream before the runner starts, and its
	// batches are small: the asked-for collection finds it behind.
	it := ev{Table: "items", Columns: itemCols}
	subject := contracts.ChangeSubject(source, "app", "items", 0)
	stored := func() {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			t.Fatal("publishes not acknowledged")
		}
	}
	for i := range keys {
		for _, c := range []contracts.Change{it.Ins(uint64(2*i+2), i, "queued"), it.Del(uint64(2*i+3), i)} {
			c.Source.SourceID = source
			body, err := c.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.PublishAsync(subject, body); err != nil {
				t.Fatal(err)
			}
		}
		if i%1000 == 999 {
			// Within the client's window of unacknowledged publishes.
			stored()
		}
	}
	stored()

	db := pg.CreateDatabase(t, "dest")
	cfg := DefaultConfig()
	cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.SSLMode, cfg.Schema = pg.Host(), pg.Port, db, "postgres", "disable", "sink"
	drv := New(cfg, quietLog())
	t.Cleanup(func() { drv.Close() })
	runner := sinkrunner.New(sinkrunner.Config{
		PipelineID: pipeline, DestinationID: dest, SourceID: source, BatchSize: 200,
		Tables: []string{"app.items"}, Bounds: confirmedAt{LSN: 3*keys + 100}, CollectEvery: time.Hour,
	}, cons, drv, nil, quietLog())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); runner.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	got, err := runner.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.Contains(got[0].Skipped, "not caught up") {
		t.Fatalf("collection with %d changes in the stream = %+v, want skipped as not caught up", 2*keys, got)
	}
	conn := pg.Connect(t, db)
	tombs := `SELECT count(*) FROM _rosetta.` + ident(tombstoneTableName("sink", "items"))
	cdctest.WaitFor(t, "every change applied and the tombstones collected", 2*time.Minute, func() bool {
		info, err := cons.Info(ctx)
		if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
			return false
		}
		var n int
		return conn.QueryRow(ctx, tombs).Scan(&n) == nil && n == 0
	})
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sink.items`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("rows after the churn = %d, %v; want 0", rows, err)
	}
}
