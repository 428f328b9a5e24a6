package postgres

import (
	"context"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestStagingTableReused: batches of one shape share one staging table.
// Each temporary table of the session is truncated at every commit (ON
// COMMIT DELETE ROWS), so a cache that misses makes every commit slower
// than the one before: the apply rate falls as the run goes on.
func TestStagingTableReused(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	e := newEnv(t, pg, "sink")
	it := ev{Table: "items", Columns: itemCols}
	for i := range 30 {
		v := uint64(10 * (i + 1))
		e.mustApply(it.Ins(v, i, "a"), it.Ins(v+1, 1000+i, "b"))
		e.mustApply(it.Upd(v+2, i, "c"))
		e.mustApply(it.Del(v+3, 1000+i))
	}
	var stages int
	q := `SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relkind = 'r' AND relname LIKE '\_rosetta\_stage\_%'`
	if err := e.conn.QueryRow(context.Background(), q).Scan(&stages); err != nil {
		t.Fatal(err)
	}
	// Inserts, updates and deletes of items stage the same columns.
	if stages != 1 {
		t.Fatalf("90 batches of one shape left %d staging tables, want 1", stages)
	}
	if got := e.rows(`SELECT count(*) FROM sink.items`); got[0] != "30" {
		t.Fatalf("rows = %v, want 30", got)
	}
}
