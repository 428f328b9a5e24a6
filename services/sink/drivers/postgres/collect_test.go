package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard/guardtest"
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

	res, err := e.drv.CollectTombstones(ctx, contracts.Table{Schema: "app", Name: "items"}, contracts.Version{LSN: 103})
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
	if res, err := e.drv.CollectTombstones(ctx, contracts.Table{Schema: "app", Name: "items"}, contracts.Version{LSN: 50}); err != nil ||
		res.Floor != (contracts.Version{LSN: 103}) || res.Collected != 0 {
		t.Fatalf("collect below the floor = %+v, %v", res, err)
	}

	// Newer changes apply: a key re-inserted after its delete, a new key
	// above the floor.
	e.mustApply(it.Ins(200, 1, "again"), it.Ins(201, 9, "new"))
	e.expect(items, "1|again|<null>", "5|v5|<null>", "9|new|<null>")
	e.expect(tombs, "3|103", "4|104")

	// A table this destination never wrote: nothing to do.
	if res, err := e.drv.CollectTombstones(ctx, contracts.Table{Schema: "app", Name: "other"}, contracts.Version{LSN: 500}); err != nil ||
		res != (sinkrunner.CollectResult{}) {
		t.Fatalf("collect of an unknown table = %+v, %v", res, err)
	}
}

// confirmedAt stands in for capture's confirmed position (guardtest).
type confirmedAt = guardtest.ConfirmedAt

// TestTombstoneChurn inserts and deletes 50,000 keys through a runner, lets
// its periodic collection run, and checks that the tombstones kept stay
// under 1 % of the keys deleted; then every insert is replayed and none
// resurrects its row (guardtest.Churn).
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

// tombstoneChurn runs guardtest.Churn on a driver writing schema sink of a
// new database.
func tombstoneChurn(t testing.TB, keys int) {
	pg := testkit.StartPostgres(t)
	db := pg.CreateDatabase(t, "dest")
	cfg := DefaultConfig()
	cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.SSLMode, cfg.Schema = pg.Host(), pg.Port, db, "postgres", "disable", "sink"
	drv := New(cfg, quietLog())
	t.Cleanup(func() { drv.Close() })
	conn := pg.Connect(t, db)
	count := func(q string) func() int {
		return func() int {
			var n int
			if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			return n
		}
	}
	guardtest.Churn(t, keys, guardtest.ChurnHarness{
		Driver:     drv,
		Rows:       count(`SELECT count(*) FROM sink.items`),
		Tombstones: count(`SELECT count(*) FROM _rosetta.` + ident(tombstoneTableName("sink", "items"))),
	})
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
	res, err := fresh().CollectTombstones(ctx, contracts.Table{Schema: "app", Name: "items"}, contracts.Version{LSN: 30})
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
