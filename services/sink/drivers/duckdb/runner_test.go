package duckdb

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard/guardtest"
)

// states records what the runner reports (shared with the other drivers' tests).
type states = cdctest.States

// TestRunnerWithDuckDB runs the sink loop end to end: change events
// published to JetStream reach a DuckDB file, which a read-only process can
// open once the driver is idle; while another process holds the file
// nothing is acked, and everything arrives once it lets go.
func TestRunnerWithDuckDB(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const source, pipeline, dest = guardtest.ItemsSource, guardtest.ItemsPipeline, guardtest.ItemsDest
	js, cons := guardtest.ItemsConsumer(t, 64<<20)
	e := newEnv(t, map[string]any{"release_after": "100ms", "lock_timeout": "100ms"})
	drv, err := Factory(ctx, json.RawMessage(fmt.Sprintf(`{"path":%q,"schema":"sink","release_after":"100ms","lock_timeout":"100ms"}`, e.path)), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	rep := &states{}
	runner := sinkrunner.New(sinkrunner.Config{
		PipelineID: pipeline, DestinationID: dest,
		BatchSize: 50, BatchWait: 50 * time.Millisecond,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		ReportEvery: 10 * time.Millisecond,
	}, cons, drv, rep, quietLog())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); runner.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := drv.Close(); err != nil {
			t.Errorf("close driver: %v", err)
		}
	})

	it := ev{Table: "items", Columns: itemCols}
	publish := func(changes ...contracts.Change) {
		t.Helper()
		for _, c := range changes {
			c.Source.SourceID = source
			body, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, contracts.ChangeSubject(source, "app", "items", 0), body); err != nil {
				t.Fatal(err)
			}
		}
	}
	ackFloor := func() (uint64, int) {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.AckFloor.Stream, info.NumAckPending
	}

	// 200 inserts, then updates and deletes, in several batches.
	var changes []contracts.Change
	for i := 1; i <= 200; i++ {
		changes = append(changes, it.Ins(uint64(10+i), i, fmt.Sprintf("row %d", i)))
	}
	for i := 1; i <= 200; i += 2 {
		changes = append(changes, it.Upd(uint64(1000+i), i, fmt.Sprintf("odd %d", i)))
	}
	for i := 2; i <= 200; i += 4 {
		changes = append(changes, it.Del(uint64(2000+i), i))
	}
	publish(changes...)
	cdctest.WaitFor(t, "all changes acked", 30*time.Second, func() bool { f, p := ackFloor(); return f == uint64(len(changes)) && p == 0 })
	cdctest.WaitFor(t, "healthy report", 5*time.Second, func() bool { return rep.Last().Health == sinkrunner.HealthHealthy })
	// The driver is idle: another process reads the file.
	cdctest.WaitFor(t, "the file readable by another process", 20*time.Second, func() bool {
		n, err := readOnce(t, e.path)
		return err == nil && n == 150
	})
	e.expect(`SELECT count(*), count(*) FILTER (WHERE name LIKE 'odd %'), count(*) FILTER (WHERE id % 4 = 2) FROM sink.items`, "150|100|0")

	// Another process holds the file: nothing is acked, health says why.
	wait := holdFile(t, e.path, 3*time.Second)
	floor, _ := ackFloor()
	publish(it.Ins(5000, 500, "while held"), it.Ins(5000, 501, "while held"), it.Upd(5001, 1, "while held"))
	cdctest.WaitFor(t, "error report", 10*time.Second, func() bool {
		st := rep.Last()
		return st.Health == sinkrunner.HealthError && st.LastError != ""
	})
	if f, p := ackFloor(); f != floor {
		t.Fatalf("while another process holds the file: ack floor %d (was %d), %d pending; want nothing acked", f, floor, p)
	}
	t.Logf("reported while held: %s", rep.Last().LastError)

	wait()
	cdctest.WaitFor(t, "changes applied after the file is free", 30*time.Second, func() bool {
		f, p := ackFloor()
		return f == floor+3 && p == 0
	})
	e.expect(`SELECT id, name FROM sink.items WHERE name = 'while held' ORDER BY id`, "1|while held", "500|while held", "501|while held")
	cdctest.WaitFor(t, "healthy again", 5*time.Second, func() bool { return rep.Last().Health == sinkrunner.HealthHealthy })
}
