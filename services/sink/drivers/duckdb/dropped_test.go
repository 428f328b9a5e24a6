package duckdb

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/colmark"
)

// TestDroppedColumns applies a source DROP COLUMN under both policies:
// a batch holding changes from before and after the drop, then a batch
// from after it. Under "keep" the column stays, rows not written since
// the drop keep their value and every row written after it (insert or
// update, whatever the batching) holds NULL; under "drop" the column is
// gone. A column a user added at the destination is never touched, and a
// table created by hand (whose columns carry no mark) is treated like one
// the driver created once a batch has listed its source columns.
func TestDroppedColumns(t *testing.T) {
	t.Parallel()
	f := cdctest.NewDroppedB(false)
	ins1, upd1, upd2 := f.InsBefore, f.UpdBefore, f.WriteAfter
	exec := func(t *testing.T, e *env, q string) {
		t.Helper()
		db := e.db()
		defer db.Close()
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	run := func(t *testing.T, settings map[string]any, handMade bool) *env {
		t.Helper()
		e := newEnv(t, settings)
		if handMade {
			if err := os.MkdirAll(filepath.Dir(e.path), 0o755); err != nil {
				t.Fatal(err)
			}
			exec(t, e, `CREATE SCHEMA sink; CREATE TABLE sink.t (id INTEGER PRIMARY KEY, a VARCHAR, b VARCHAR)`)
		}
		e.mustApply(ins1(10, 1, "a1", "b1"), ins1(10, 2, "a2", "b2"), ins1(10, 3, "a3", "b3"), ins1(10, 5, "a5", "b5"))
		// A column the user adds at the destination: never the source's.
		exec(t, e, `ALTER TABLE sink.t ADD COLUMN note VARCHAR; UPDATE sink.t SET note = 'mine'`)
		// One batch across the drop: the change of row 1 was written
		// before it (lists b), the change of row 2 after it.
		e.mustApply(upd1(20, 1, "a1x", "b1x"), upd2(contracts.OpUpdate, 21, 2, "a2x"))
		// A later batch: only changes written after the drop.
		e.mustApply(upd2(contracts.OpUpdate, 30, 3, "a3x"), upd2(contracts.OpCreate, 30, 4, "a4"))
		return e
	}
	hasB := `SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'sink' AND table_name = 't' AND column_name = 'b'`

	for _, tt := range []struct {
		name     string
		settings map[string]any
		handMade bool
	}{{"keep by default", nil, false}, {"keep, table created by hand", map[string]any{"dropped_columns": "keep"}, true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := run(t, tt.settings, tt.handMade)
			e.expect(`SELECT id, a, b, note FROM sink.t ORDER BY id`,
				"1|a1x|<null>|mine", "2|a2x|<null>|mine", "3|a3x|<null>|mine", "4|a4|<null>|<null>", "5|a5|b5|mine")
			e.expect(`SELECT comment FROM duckdb_columns() WHERE schema_name = 'sink' AND table_name = 't' AND column_name = 'b'`, colmark.Prefix)
			// The source adds b back: rows written from then on carry it.
			e.mustApply(upd1(40, 3, "a3y", "b3y"))
			e.expect(`SELECT id, a, b FROM sink.t WHERE id = 3`, "3|a3y|b3y")
		})
	}
	t.Run("drop", func(t *testing.T) {
		t.Parallel()
		e := run(t, map[string]any{"dropped_columns": "drop"}, false)
		e.expect(hasB, "0")
		e.expect(`SELECT id, a, note FROM sink.t ORDER BY id`,
			"1|a1x|mine", "2|a2x|mine", "3|a3x|mine", "4|a4|<null>", "5|a5|mine")
		// A redelivered change from before the drop adds the column
		// back (empty, version-guarded), and the next change from after
		// the drop drops it again.
		e.mustApply(upd1(20, 1, "a1x", "b1x"))
		e.mustApply(upd2(contracts.OpUpdate, 50, 5, "a5x"))
		e.expect(hasB, "0")
		e.expect(`SELECT id, a, note FROM sink.t WHERE id IN (1, 5) ORDER BY id`, "1|a1x|mine", "5|a5x|mine")
	})
	t.Run("config", func(t *testing.T) {
		t.Parallel()
		if _, err := ParseConfig([]byte(`{"path":"/x.duckdb","dropped_columns":"forget"}`)); err == nil {
			t.Fatal("dropped_columns forget accepted")
		}
	})
}
