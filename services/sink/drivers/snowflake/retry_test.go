package snowflake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestApplyFailsMidBatch fails one statement inside the batch's
// transaction (COPY, then MERGE): Apply returns a transient error, the
// transaction is rolled back, staged files are removed, and applying the
// same batch again writes every row exactly once.
func TestApplyFailsMidBatch(t *testing.T) {
	t.Parallel()
	it := ev{Table: "items", Columns: itemCols}
	for _, stmt := range []string{"COPY INTO", "MERGE INTO"} {
		t.Run(stmt, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
			batch := []contracts.Change{it.Upd(20, 1, "a2"), it.Del(21, 2), it.Ins(22, 3, "c"), it.Ins(22, 4, "d")}
			e.srv.FailNext(stmt, 1)
			err := e.apply(batch...)
			var se *sf.SnowflakeError
			if !errors.As(err, &se) || sinkrunner.IsPermanent(err) {
				t.Fatalf("apply with a failing %s = %v; want a transient snowflake error", stmt, err)
			}
			// Nothing of the failed batch is visible.
			e.expect(items, "1|a|<null>", "2|b|<null>")
			e.noStagedFiles()
			e.mustApply(batch...)
			e.expect(items, "1|a2|<null>", "3|c|<null>", "4|d|<null>")
			e.expect(`SELECT ID, COUNT(*) FROM ITEMS GROUP BY ID HAVING COUNT(*) <> 1`)
			e.noStagedFiles()
		})
	}
}

// TestRunnerRetriesFailedMerge runs the sink loop while the destination
// fails the MERGE of every batch: nothing past the first batch is acked,
// the target keeps its rows and no staged file is left; once the failures
// stop the runner retries and the target ends with every row once.
func TestRunnerRetriesFailedMerge(t *testing.T) {
	t.Parallel()
	srv := startFake(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	const source, pipeline, dest = 9, 5, 6
	if _, err := natsx.EnsureSourceStream(ctx, js, source, natsx.StreamLimits{MaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	cons, err := natsx.EnsurePipelineConsumer(ctx, js, source, pipeline, dest, []natsx.Table{{Schema: "app", Name: "items"}})
	if err != nil {
		t.Fatal(err)
	}
	drv, err := Factory(ctx, fakeConfig(t, srv, nil), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	rep := &states{}
	runner := sinkrunner.New(sinkrunner.Config{
		PipelineID: pipeline, DestinationID: dest, SourceID: source,
		BatchSize: 1000, BatchWait: 50 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
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
	count := func() string {
		return fmt.Sprint(queryRows(t, rd, `SELECT COUNT(*), COUNT(DISTINCT ID), COUNT_IF(NAME LIKE 'upd %') FROM ITEMS`))
	}

	var first []contracts.Change
	for i := 1; i <= 100; i++ {
		first = append(first, it.Ins(uint64(10+i), i, fmt.Sprintf("row %d", i)))
	}
	publish(first...)
	cdctest.WaitFor(t, "first batch acked", 20*time.Second, func() bool { f, p := ackFloor(); return f == 100 && p == 0 })

	// Every MERGE fails until the fault is cleared: each attempt stages a
	// file, copies it and fails in the transaction.
	srv.FailNext("MERGE INTO", 1_000_000)
	var second []contracts.Change
	for i := 1; i <= 100; i += 2 {
		second = append(second, it.Upd(uint64(1000+i), i, fmt.Sprintf("upd %d", i)))
	}
	for i := 101; i <= 150; i++ {
		second = append(second, it.Ins(uint64(2000+i), i, fmt.Sprintf("row %d", i)))
	}
	for i := 2; i <= 100; i += 10 {
		second = append(second, it.Del(uint64(3000+i), i))
	}
	publish(second...)
	cdctest.WaitFor(t, "error report", 20*time.Second, func() bool {
		st := rep.Last()
		return st.Health == sinkrunner.HealthError && strings.Contains(st.LastError, "injected by fakesnowflake")
	})
	cdctest.WaitFor(t, "several failed attempts", 20*time.Second, func() bool {
		failed := 0
		for _, st := range rep.All() {
			if st.Health == sinkrunner.HealthError {
				failed++
			}
		}
		return failed >= 3
	})
	if f, _ := ackFloor(); f != 100 {
		t.Fatalf("ack floor %d while every MERGE fails; want 100 (the first batch only)", f)
	}
	if got := count(); got != "[100|100|0]" {
		t.Errorf("target while the MERGE fails: %s, want [100|100|0] (the failed transaction rolled back)", got)
	}

	srv.FailNext("MERGE INTO", 0)
	total := uint64(len(first) + len(second))
	cdctest.WaitFor(t, "all changes acked", 30*time.Second, func() bool { f, p := ackFloor(); return f == total && p == 0 })
	cdctest.WaitFor(t, "healthy report", 5*time.Second, func() bool { return rep.Last().Health == sinkrunner.HealthHealthy })
	// 150 rows less 10 deletes, 50 updated (ids 1, 3, …; none deleted).
	if got := count(); got != "[140|140|50]" {
		t.Errorf("after the retry: %s, want [140|140|50]", got)
	}
	if dup := queryRows(t, rd, `SELECT ID, COUNT(*) FROM ITEMS GROUP BY ID HAVING COUNT(*) <> 1`); len(dup) > 0 {
		t.Errorf("duplicate keys: %v", dup)
	}
	err = filepath.WalkDir(srv.StageDir(), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("staged file left behind: %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
