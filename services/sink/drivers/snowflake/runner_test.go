package snowflake

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit/fakesnowflake"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard/guardtest"
)

// states records what the runner reports (shared with the other drivers' tests).
type states = cdctest.States

// TestRunnerWithFakeSnowflake runs the sink loop end to end: change events
// published to JetStream reach the fake Snowflake through the driver built
// by Factory. The destination first rejects the driver's key: nothing is
// acked and the health says what to fix; once the key is registered the
// same runner delivers everything.
func TestRunnerWithFakeSnowflake(t *testing.T) {
	t.Parallel()
	srv := startFake(t) // knows only testKeys()[0], which the reader uses
	ctx := context.Background()
	const source, pipeline, dest = guardtest.ItemsSource, guardtest.ItemsPipeline, guardtest.ItemsDest
	js, cons := guardtest.ItemsConsumer(t, 64<<20)
	drv, err := Factory(ctx, fakeConfig(t, srv, map[string]any{"private_key": pemPKCS8(t, testKeys()[1])}), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	rep := &states{}
	runner := sinkrunner.New(sinkrunner.Config{
		PipelineID: pipeline, DestinationID: dest, SourceID: source,
		BatchSize: 100, BatchWait: 50 * time.Millisecond,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		ReportEvery: 10 * time.Millisecond,
	}, cons, drv, rep, quietLog())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); runner.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = drv.Close() })

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
	rd := openReader(t, srv)

	// 300 inserts, then updates and deletes, in several batches.
	var changes []contracts.Change
	for i := 1; i <= 300; i++ {
		changes = append(changes, it.Ins(uint64(10+i), i, fmt.Sprintf("row %d", i)))
	}
	for i := 1; i <= 300; i += 2 {
		changes = append(changes, it.Upd(uint64(1000+i), i, fmt.Sprintf("odd %d", i)))
	}
	for i := 2; i <= 300; i += 4 {
		changes = append(changes, it.Del(uint64(2000+i), i))
	}
	publish(changes...)

	// The key is not registered: nothing is acked, health says why.
	cdctest.WaitFor(t, "error report", 10*time.Second, func() bool {
		st := rep.Last()
		return st.Health == sinkrunner.HealthError && strings.Contains(st.LastError, "RSA_PUBLIC_KEY")
	})
	time.Sleep(500 * time.Millisecond) // several retries
	if f, _ := ackFloor(); f != 0 {
		t.Fatalf("ack floor %d while the destination rejects the key; want nothing acked", f)
	}
	t.Logf("reported while the key is rejected: %s", rep.Last().LastError)
	if st := rep.Last(); strings.Contains(st.LastError, "PRIVATE KEY") {
		t.Errorf("error report shows the key: %q", st.LastError)
	}

	srv.SetUser(fakesnowflake.User{Name: testUser, PublicKeys: []*rsa.PublicKey{&testKeys()[0].PublicKey, &testKeys()[1].PublicKey}})
	cdctest.WaitFor(t, "all changes acked", 30*time.Second, func() bool { f, p := ackFloor(); return f == uint64(len(changes)) && p == 0 })
	cdctest.WaitFor(t, "healthy report", 5*time.Second, func() bool { return rep.Last().Health == sinkrunner.HealthHealthy })
	want := []string{"225|150|0"}
	if got := queryRows(t, rd, `SELECT COUNT(*), COUNT_IF(NAME LIKE 'odd %'), COUNT_IF(ID % 4 = 2) FROM ITEMS`); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows: got %v, want %v", got, want)
	}

	// Redelivered history (a consumer reset) changes nothing.
	publish(changes[:50]...)
	publish(it.Upd(5000, 1, "last"))
	cdctest.WaitFor(t, "redelivered changes acked", 20*time.Second, func() bool {
		f, p := ackFloor()
		return f == uint64(len(changes)+51) && p == 0
	})
	if got := queryRows(t, rd, `SELECT COUNT(*), COUNT_IF(NAME LIKE 'odd %'), MAX(_ROSETTA_LSN) FROM ITEMS`); fmt.Sprint(got) != "[225|149|5000]" {
		t.Errorf("after redelivery: %v, want [225|149|5000]", got)
	}
}
