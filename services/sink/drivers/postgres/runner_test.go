package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard/guardtest"
)

// states records what the runner reports (shared with the other drivers' tests).
type states = cdctest.States

// TestRunnerWithPostgres runs the sink loop end to end: change events
// published to JetStream reach a real PostgreSQL; while the destination is
// down nothing is acked, and everything arrives once it is back.
func TestRunnerWithPostgres(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	ctx := context.Background()
	const source, pipeline, dest = guardtest.ItemsSource, guardtest.ItemsPipeline, guardtest.ItemsDest
	js, cons := guardtest.ItemsConsumer(t, 64<<20)
	e := newEnv(t, pg, "sink")
	rep := &states{}
	runner := sinkrunner.New(sinkrunner.Config{
		PipelineID: pipeline, DestinationID: dest,
		BatchSize: 50, BatchWait: 50 * time.Millisecond,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		ReportEvery: 10 * time.Millisecond,
	}, cons, e.drv, rep, quietLog())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); runner.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

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
	count := func() int {
		var n int
		if err := pg.Connect(t, e.db).QueryRow(ctx, `SELECT count(*) FROM sink.items`).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	ackFloor := func() (uint64, int) {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A batch being retried is ack-pending; changes published after
		// the runner fetched it are still pending at the consumer.
		return info.AckFloor.Stream, info.NumAckPending + int(info.NumPending)
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
	cdctest.WaitFor(t, "all changes acked", 20*time.Second, func() bool { f, p := ackFloor(); return f == uint64(len(changes)) && p == 0 })
	e.expect(`SELECT count(*), count(*) FILTER (WHERE name LIKE 'odd %'), count(*) FILTER (WHERE id % 4 = 2) FROM sink.items`, "150|100|0")
	cdctest.WaitFor(t, "healthy report", 5*time.Second, func() bool { return rep.Last().Health == sinkrunner.HealthHealthy })

	// Destination down: nothing is acked, health says why.
	if err := pg.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			pg.Start()
		}
	})
	floor, _ := ackFloor()
	publish(it.Ins(5000, 500, "while down"), it.Ins(5000, 501, "while down"), it.Upd(5001, 1, "while down"))
	cdctest.WaitFor(t, "error report", 10*time.Second, func() bool {
		st := rep.Last()
		return st.Health == sinkrunner.HealthError && st.LastError != ""
	})
	time.Sleep(time.Second) // several retries
	if f, p := ackFloor(); f != floor || p != 3 {
		t.Fatalf("while the destination is down: ack floor %d (was %d), %d pending; want nothing acked and 3 pending", f, floor, p)
	}
	t.Logf("reported while down: %s", rep.Last().LastError)
	if st := rep.Last(); strings.Contains(st.LastError, "password") {
		t.Errorf("error report mentions a password: %q", st.LastError)
	}

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	stopped = false
	cdctest.WaitFor(t, "changes applied after the destination is back", 30*time.Second, func() bool {
		f, p := ackFloor()
		return f == floor+3 && p == 0
	})
	e.conn = pg.Connect(t, e.db) // the old one died with the server
	if got := count(); got != 152 {
		t.Errorf("rows = %d, want 152", got)
	}
	e.expect(`SELECT id, name FROM sink.items WHERE name = 'while down' ORDER BY id`, "1|while down", "500|while down", "501|while down")
	cdctest.WaitFor(t, "healthy again", 5*time.Second, func() bool { return rep.Last().Health == sinkrunner.HealthHealthy })
}
