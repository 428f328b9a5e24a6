package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestCollectTombstones collects below a bound and checks that every stale
// change is still refused: those older than the bound by the collect floor,
// those between the bound and a kept tombstone by that tombstone; changes
// newer than the deletes apply.
func TestCollectTombstones(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	e := newEnv(t, pg, "sink")
	ctx := context.Background()
	it := ev{Table: "items", Columns: itemCols}
	tombs := `SELECT id, _rosetta_lsn FROM _rosetta.` + ident(tombstoneTableName("sink", "items")) + ` ORDER BY id`

	// Keys 1..4 inserted at 10+i and deleted at 100+i; 5 stays.
	for i := 1; i <= 5; i++ {
		e.mustApply(it.Ins(uint64(10+i), i, fmt.Sprint("v", i)))
	}
	for i := 1; i <= 4; i++ {
		e.mustApply(it.Del(uint64(100+i), i))
	}
	e.expect(tombs, "1|101", "2|102", "3|103", "4|104")

	res, err := e.drv.CollectTombstones(ctx, cdc.TableRef{Schema: "app", Table: "items"}, contracts.Version{LSN: 103})
	if err != nil {
		t.Fatal(err)
	}
	// Stale changes of every deleted key: the first inserts again, and
	// inserts just below each delete (key 4's at 103, at the floor, is
	// refused by its kept tombstone only). Each in its own Apply, and
	// both of a key in one.
	var stale []contracts.Change
	for i := 1; i <= 4; i++ {
		stale = append(stale, it.Ins(uint64(10+i), i, "stale"), it.Ins(uint64(99+i), i, "stale"))
	}
	for _, c := range stale {
		e.mustApply(c)
	}
	for i := 0; i < len(stale); i += 2 {
		e.mustApply(stale[i], stale[i+1])
	}
	e.expect(items, "5|v5|<null>")
	// Checked after the rows: a collection that went too far shows as a
	// resurrected row first.
	if want := (sinkrunner.CollectResult{Collected: 2, Remaining: 2, Floor: contracts.Version{LSN: 103}}); res != want {
		t.Fatalf("collect = %+v, want %+v", res, want)
	}
	e.expect(tombs, "3|103", "4|104")
	// A lower bound never lowers the floor.
	if res, err := e.drv.CollectTombstones(ctx, cdc.TableRef{Schema: "app", Table: "items"}, contracts.Version{LSN: 50}); err != nil ||
		res.Floor != (contracts.Version{LSN: 103}) || res.Collected != 0 {
		t.Fatalf("collect below the floor = %+v, %v", res, err)
	}

	// Newer changes apply: a key re-inserted after its delete, a new key
	// above the floor.
	e.mustApply(it.Ins(200, 1, "again"), it.Ins(201, 9, "new"))
	e.expect(items, "1|again|<null>", "5|v5|<null>", "9|new|<null>")
	e.expect(tombs, "3|103", "4|104")

	// A table this destination never wrote: nothing to do.
	if res, err := e.drv.CollectTombstones(ctx, cdc.TableRef{Schema: "app", Table: "other"}, contracts.Version{LSN: 500}); err != nil ||
		res != (sinkrunner.CollectResult{}) {
		t.Fatalf("collect of an unknown table = %+v, %v", res, err)
	}
}

// confirmedAt stands in for capture's confirmed position: every change
// published from now on is at least at it. No dead letters, no backfills.
type confirmedAt contracts.Version

func (c confirmedAt) PublishFloor(_ context.Context, _, _, _ int64, tables []string) (map[string]contracts.Version, error) {
	out := map[string]contracts.Version{}
	for _, t := range tables {
		out[t] = contracts.Version(c)
	}
	return out, nil
}

func (confirmedAt) DeadLetterFloor(context.Context, int64, int64, []string) (map[string]contracts.Version, error) {
	return map[string]contracts.Version{}, nil
}

// TestTombstoneChurn inserts and deletes 50,000 keys through a runner, lets
// its periodic collection run, and checks that the tombstones kept stay
// under 1 % of the keys deleted; then every insert is replayed and none
// resurrects its row.
func TestTombstoneChurn(t *testing.T) {
	t.Parallel()
	tombstoneChurn(t, 50000)
}

// BenchmarkTombstoneChurn1M is TestTombstoneChurn with 1,000,000 keys
// (make bench-guard, part of make bench).
func BenchmarkTombstoneChurn1M(b *testing.B) {
	for b.Loop() {
		tombstoneChurn(b, 1000000)
	}
}

func tombstoneChurn(t testing.TB, keys int) {
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	const source, pipeline, dest = 7, 3, 4
	if _, err := natsx.EnsureSourceStream(ctx, js, source, natsx.StreamLimits{MaxBytes: 2 << 30}); err != nil {
		t.Fatal(err)
	}
	cons, err := natsx.EnsurePipelineConsumer(ctx, js, source, pipeline, dest, []natsx.Table{{Schema: "app", Name: "items"}})
	if err != nil {
		t.Fatal(err)
	}
	db := pg.CreateDatabase(t, "dest")
	cfg := DefaultConfig()
	cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.SSLMode, cfg.Schema = pg.Host(), pg.Port, db, "postgres", "disable", "sink"
	drv := New(cfg, quietLog())
	t.Cleanup(func() { drv.Close() })
	// Capture has confirmed past every change of the test.
	bounds := confirmedAt{LSN: uint64(3*keys + 100)}
	runner := sinkrunner.New(sinkrunner.Config{
		PipelineID: pipeline, DestinationID: dest, SourceID: source,
		Tables: []string{"app.items"}, Bounds: bounds, CollectEvery: 200 * time.Millisecond,
	}, cons, drv, nil, quietLog())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); runner.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	it := ev{Table: "items", Columns: itemCols}
	subject := contracts.ChangeSubject(source, "app", "items", 0)
	var published uint64
	publish := func(c contracts.Change) {
		c.Source.SourceID = source
		body, err := c.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishAsync(subject, body); err != nil {
			t.Fatal(err)
		}
		published++
	}
	stored := func() {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(2 * time.Minute):
			t.Fatal("publishes not acknowledged")
		}
	}
	settled := func() {
		stored()
		cdctest.WaitFor(t, "every change applied", 10*time.Minute, func() bool {
			info, err := cons.Info(ctx)
			return err == nil && info.AckFloor.Stream == published && info.NumAckPending == 0 && info.NumPending == 0
		})
	}
	conn := pg.Connect(t, db)
	count := func(q string) int {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	tombs := `SELECT count(*) FROM _rosetta.` + ident(tombstoneTableName("sink", "items"))

	t.Logf("%s start", time.Now().Format("15:04:05.000"))
	// Key i is inserted at 2i and deleted at 2i+1, in windows of 1,000
	// keys, so that deletes follow their inserts closely, as in a queue.
	const window = 1000
	for lo := 0; lo < keys; lo += window {
		for i := lo; i < min(lo+window, keys); i++ {
			publish(it.Ins(uint64(2*i+2), i, "queued"))
		}
		for i := lo; i < min(lo+window, keys); i++ {
			publish(it.Del(uint64(2*i+3), i))
		}
		stored()
	}
	t.Logf("%s published", time.Now().Format("15:04:05.000"))
	settled()
	t.Logf("%s settled", time.Now().Format("15:04:05.000"))
	cdctest.WaitFor(t, "tombstones collected below 1 % of the keys deleted", 2*time.Minute, func() bool {
		return count(tombs) <= keys/100
	})
	if rows := count(`SELECT count(*) FROM sink.items`); rows != 0 {
		t.Fatalf("rows after the churn = %d, want 0", rows)
	}
	kept := count(tombs)
	t.Logf("%s collected", time.Now().Format("15:04:05.000"))

	// Every insert again, as a dead-letter replay brings it: through the
	// runner's driver, between its batches, 10,000 per Replay.
	stale := make([]contracts.Change, 0, 10000)
	for lo := 0; lo < keys; lo += 10000 {
		stale = stale[:0]
		for i := lo; i < min(lo+10000, keys); i++ {
			c := it.Ins(uint64(2*i+2), i, "stale")
			c.Source.SourceID = source
			stale = append(stale, c)
		}
		failed, err := runner.Replay(ctx, stale)
		if err != nil {
			t.Fatal(err)
		}
		for i, err := range failed {
			if err != nil {
				t.Fatalf("replay of %v: %v", stale[i].Key, err)
			}
		}
	}
	if rows := count(`SELECT count(*) FROM sink.items`); rows != 0 {
		t.Fatalf("stale inserts resurrected %d of %d deleted rows", rows, keys)
	}
	if tb, ok := t.(*testing.T); ok {
		tb.Logf("%d keys inserted and deleted: %d tombstones kept after collection (limit %d)", keys, kept, keys/100)
	}
}

// TestCollectFloorOldRegistry: a destination written before collection
// existed (a registry without the floor's columns) gets them from the first
// collection, or from the first Apply, of a new driver.
func TestCollectFloorOldRegistry(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	e := newEnv(t, pg, "sink")
	ctx := context.Background()
	it := ev{Table: "items", Columns: itemCols}
	e.mustApply(it.Ins(10, 1, "one"), it.Ins(11, 2, "two"))
	e.mustApply(it.Del(20, 1))
	old := `ALTER TABLE _rosetta.tables DROP COLUMN collect_lsn, DROP COLUMN collect_seq`
	if _, err := e.conn.Exec(ctx, old); err != nil {
		t.Fatal(err)
	}
	fresh := func() *Driver {
		d := New(e.drv.cfg, quietLog())
		t.Cleanup(func() { d.Close() })
		return d
	}
	res, err := fresh().CollectTombstones(ctx, cdc.TableRef{Schema: "app", Table: "items"}, contracts.Version{LSN: 30})
	if err != nil || res.Collected != 1 || res.Remaining != 0 {
		t.Fatalf("collect on an old registry = %+v, %v", res, err)
	}
	if _, err := e.conn.Exec(ctx, old); err != nil {
		t.Fatal(err)
	}
	e.drv = fresh()
	e.mustApply(it.Ins(40, 3, "three"))
	e.expect(items, "2|two|<null>", "3|three|<null>")
	e.expect(`SELECT collect_lsn, collect_seq FROM _rosetta.tables`, "0|0")
}
