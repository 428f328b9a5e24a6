package duckdb

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/colmark"
)

// TestRenamedColumn applies a source RENAME COLUMN (a becomes a2, same
// attnum) under both dropped-column policies: a batch of rows from before
// it, a batch holding changes from before and after it, and a batch from
// after it. The destination column is renamed, so rows written before the
// rename keep their values under the new name, rows written after it land
// there too, and no column of the old name is left. A table whose columns
// carry the plain mark of older drivers gets attnums on its first batch
// and follows the rename the same way. Without attnums (an older
// producer) the rename still arrives as a new column beside the old one.
func TestRenamedColumn(t *testing.T) {
	t.Parallel()
	cols := cdctest.RenameColumns
	run := func(t *testing.T, policy string, attnums, plainMarks bool) *env {
		t.Helper()
		e := newEnv(t, map[string]any{"dropped_columns": policy})
		before, after := ev{Table: "t", Columns: cols(attnums, "a")}, ev{Table: "t", Columns: cols(attnums, "a2")}
		row := func(e ev, op contracts.Op, lsn uint64, id int, name, a, b string) contracts.Change {
			return e.Change(op, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "", fmt.Sprintf(`{"id":%d,%q:%q,"b":%q}`, id, name, a, b))
		}
		if plainMarks {
			if err := os.MkdirAll(filepath.Dir(e.path), 0o755); err != nil {
				t.Fatal(err)
			}
			db := e.db()
			_, err := db.Exec(`CREATE SCHEMA sink; CREATE TABLE sink.t (id INTEGER PRIMARY KEY, a VARCHAR, b VARCHAR);
				COMMENT ON COLUMN sink.t.a IS 'rosetta: source column'; COMMENT ON COLUMN sink.t.b IS 'rosetta: source column'`)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		e.mustApply(row(before, contracts.OpCreate, 10, 1, "a", "a1", "b1"), row(before, contracts.OpCreate, 10, 2, "a", "a2", "b2"),
			row(before, contracts.OpCreate, 10, 3, "a", "a3", "b3"))
		// One batch across the rename: row 1's change was written before
		// it (lists a), row 2's after it (lists a2).
		e.mustApply(row(before, contracts.OpUpdate, 20, 1, "a", "a1x", "b1x"), row(after, contracts.OpUpdate, 21, 2, "a2", "a2x", "b2x"))
		e.mustApply(row(after, contracts.OpCreate, 30, 4, "a2", "a4", "b4"))
		return e
	}
	hasA := `SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'sink' AND table_name = 't' AND column_name = 'a'`
	for _, tt := range []struct {
		name, policy string
		plainMarks   bool
	}{{"keep", DroppedKeep, false}, {"drop", DroppedDrop, false}, {"plain marks", DroppedKeep, true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := run(t, tt.policy, true, tt.plainMarks)
			e.expect(hasA, "0")
			e.expect(`SELECT id, a2, b FROM sink.t ORDER BY id`, "1|a1x|b1x", "2|a2x|b2x", "3|a3|b3", "4|a4|b4")
			e.expect(`SELECT comment FROM duckdb_columns() WHERE schema_name = 'sink' AND table_name = 't' AND column_name = 'a2'`,
				colmark.Prefix+" attnum=2")
		})
	}
	t.Run("no attnums", func(t *testing.T) {
		t.Parallel()
		e := run(t, DroppedKeep, false, false)
		// The old behaviour: a is a dropped column (NULL in every row
		// written from the batch across the rename on), a2 a new one.
		e.expect(`SELECT id, a, a2, b FROM sink.t ORDER BY id`,
			"1|<null>|<null>|b1x", "2|<null>|a2x|b2x", "3|a3|<null>|b3", "4|<null>|a4|b4")
	})
}
