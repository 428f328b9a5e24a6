package duckdb

import (
	"context"
	"fmt"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard/guardtest"
)

// TestCollectTombstones collects below a bound and checks that every stale
// change is still refused: those older than the bound by the collect floor,
// those between the bound and a kept tombstone by that tombstone; changes
// newer than the deletes apply (the PostgreSQL driver's test, on DuckDB).
func TestCollectTombstones(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	it := ev{Table: "items", Columns: itemCols}
	tombs := `SELECT id, _rosetta_lsn FROM _rosetta.` + ident(tombstoneTableName("sink", "items")) + ` ORDER BY id`

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
	if res, err := e.drv.CollectTombstones(ctx, contracts.Table{Schema: "app", Name: "items"}, contracts.Version{LSN: 50}); err != nil ||
		res.Floor != (contracts.Version{LSN: 103}) || res.Collected != 0 {
		t.Fatalf("collect below the floor = %+v, %v", res, err)
	}

	e.mustApply(it.Ins(200, 1, "again"), it.Ins(201, 9, "new"))
	e.expect(items, "1|again|<null>", "5|v5|<null>", "9|new|<null>")
	e.expect(tombs, "3|103", "4|104")

	if res, err := e.drv.CollectTombstones(ctx, contracts.Table{Schema: "app", Name: "other"}, contracts.Version{LSN: 500}); err != nil ||
		res != (sinkrunner.CollectResult{}) {
		t.Fatalf("collect of an unknown table = %+v, %v", res, err)
	}
}

// TestTombstoneChurn is the PostgreSQL driver's churn test on DuckDB
// (guardtest.Churn), with the same 50,000 keys (about 5 s; a minute under
// -race on a loaded 2-core machine, where the PostgreSQL one takes longer):
// a runner collecting every 200 ms keeps at most 500 tombstones, and the
// inserts replayed afterwards resurrect no row.
func TestTombstoneChurn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	count := guardtest.Counter(t, func(q string) []string { return e.rows(q) })
	guardtest.Churn(t, 50000, guardtest.ChurnHarness{
		Driver:     e.drv,
		Rows:       count(`SELECT count(*) FROM sink.items`),
		Tombstones: count(`SELECT count(*) FROM _rosetta.` + ident(tombstoneTableName("sink", "items"))),
	})
}
