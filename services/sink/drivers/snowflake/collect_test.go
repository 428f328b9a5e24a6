package snowflake

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
// newer than the deletes apply (the PostgreSQL driver's test, on the fake
// Snowflake). A chunk of one tombstone makes every collected tombstone
// its own DELETE.
func TestCollectTombstones(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.drv.collectChunk = 1
	ctx := context.Background()
	it := ev{Table: "items", Columns: itemCols}
	const tombs = `SELECT ID, _ROSETTA_LSN FROM _ROSETTA_TOMB_ITEMS ORDER BY ID`
	const items = `SELECT ID, NAME FROM ITEMS ORDER BY ID`

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
	e.expect(items, "5|v5")
	// Checked after the rows: a collection that went too far shows as a
	// resurrected row first.
	if want := (sinkrunner.CollectResult{Collected: 2, Remaining: 2, Floor: contracts.Version{LSN: 103}}); res != want {
		t.Fatalf("collect = %+v, want %+v", res, want)
	}
	e.expect(tombs, "3|103", "4|104")
	// A lower bound never lowers the floor.
	if res, err := e.drv.CollectTombstones(ctx, contracts.Table{Schema: "app", Name: "items"}, contracts.Version{LSN: 50}); err != nil ||
		res.Floor != (contracts.Version{LSN: 103}) || res.Collected != 0 || res.Remaining != 2 {
		t.Fatalf("collect below the floor = %+v, %v", res, err)
	}
	e.mustApply(it.Ins(12, 2, "stale"))
	e.expect(items, "5|v5")

	// Newer changes apply: a key re-inserted after its delete, a new key
	// above the floor.
	e.mustApply(it.Ins(200, 1, "again"), it.Ins(201, 9, "new"))
	e.expect(items, "1|again", "5|v5", "9|new")
	e.expect(tombs, "3|103", "4|104")

	// A table this destination never wrote: nothing to do.
	if res, err := e.drv.CollectTombstones(ctx, contracts.Table{Schema: "app", Name: "other"}, contracts.Version{LSN: 500}); err != nil ||
		res != (sinkrunner.CollectResult{}) {
		t.Fatalf("collect of an unknown table = %+v, %v", res, err)
	}
}

// TestCollectFloorOldRegistry: a registry created before collection (no
// collect floor) gets its columns from a new driver, keeps its truncate
// watermarks, and the floor then refuses a stale insert.
func TestCollectFloorOldRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	e.exec(`CREATE TABLE ROSETTA.PUBLIC._ROSETTA_TABLES ("TABLE_NAME" VARCHAR NOT NULL, "TRUNCATE_LSN" NUMBER(20,0) NOT NULL,
		"TRUNCATE_SEQ" NUMBER(20,0) NOT NULL, PRIMARY KEY ("TABLE_NAME"))`)
	e.exec(`INSERT INTO ROSETTA.PUBLIC._ROSETTA_TABLES VALUES ('ITEMS', 5, 0)`)
	it := ev{Table: "items", Columns: itemCols}
	e.mustApply(it.Ins(4, 1, "before truncate"), it.Ins(10, 2, "b"), it.Ins(11, 3, "c"))
	e.mustApply(it.Del(20, 2))
	e.expect(`SELECT ID, NAME FROM ITEMS ORDER BY ID`, "3|c")
	if res, err := e.drv.CollectTombstones(ctx, contracts.Table{Schema: "app", Name: "items"}, contracts.Version{LSN: 30}); err != nil ||
		res != (sinkrunner.CollectResult{Collected: 1, Floor: contracts.Version{LSN: 30}}) {
		t.Fatalf("collect = %+v, %v", res, err)
	}
	e.mustApply(it.Ins(10, 2, "stale"), it.Ins(4, 1, "stale"))
	e.expect(`SELECT ID, NAME FROM ITEMS ORDER BY ID`, "3|c")
	e.expect(`SELECT TABLE_NAME, TRUNCATE_LSN, COLLECT_LSN, COLLECT_SEQ FROM _ROSETTA_TABLES`, "ITEMS|5|30|0")
}

// TestTombstoneChurn is the PostgreSQL driver's churn test on the fake
// Snowflake (guardtest.Churn), with the same 50,000 keys: the fake keeps up
// (about 10 s, 30 s under -race), and a backlog of more than 10,000
// tombstones makes each collection delete in several chunks. A runner
// collecting every 200 ms keeps at most 500 tombstones, and the inserts
// replayed afterwards resurrect no row.
func TestTombstoneChurn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	count := guardtest.Counter(t, e.rows)
	guardtest.Churn(t, 50000, guardtest.ChurnHarness{
		Driver:     e.drv,
		Rows:       count(`SELECT count(*) FROM ITEMS`),
		Tombstones: count(`SELECT count(*) FROM _ROSETTA_TOMB_ITEMS`),
	})
}
