package snowflake

import (
	"strconv"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
)

// TestNullableKeys applies a source table without a primary key under
// REPLICA IDENTITY FULL, where every column is the key and may be NULL:
// the table gets no primary key (Snowflake would make its columns NOT
// NULL), rows with a NULL key column are matched NULL-safe (a redelivered
// insert does not duplicate the row, a delete removes it, and its
// tombstone keeps an older insert out).
func TestNullableKeys(t *testing.T) {
	t.Parallel()
	full := ev{Table: "nopk", Columns: []contracts.Column{
		{Name: "id", Type: "integer", BaseType: "integer", Key: true},
		{Name: "code", Type: "text", BaseType: "text", Key: true},
	}}
	const rows = `SELECT ID, CODE FROM ROSETTA.PUBLIC.NOPK ORDER BY ID, CODE`
	ins := func(lsn uint64, id int, code string) contracts.Change {
		r := `{"id":` + strconv.Itoa(id) + `,"code":` + code + `}`
		return full.Change(contracts.OpCreate, lsn, 1, r, "", r)
	}
	del := func(lsn uint64, id int, code string) contracts.Change {
		r := `{"id":` + strconv.Itoa(id) + `,"code":` + code + `}`
		return full.Change(contracts.OpDelete, lsn, 1, r, r, "")
	}
	e := newEnv(t, nil)
	e.mustApply(ins(10, 1, `null`), ins(10, 2, `"b"`))
	e.expect(rows, "1|<null>", "2|b")
	// Redelivered: nothing changes, no second row.
	e.mustApply(ins(10, 1, `null`), ins(10, 2, `"b"`))
	e.expect(rows, "1|<null>", "2|b")
	e.mustApply(del(20, 1, `null`))
	e.expect(rows, "2|b")
	// The insert arrives again after the delete: the tombstone keeps it out.
	e.mustApply(ins(10, 1, `null`))
	e.expect(rows, "2|b")
	// A newer insert of the same key comes back once.
	e.mustApply(ins(30, 1, `null`))
	e.mustApply(ins(30, 1, `null`))
	e.expect(rows, "1|<null>", "2|b")
}

// TestMergeDeduplicatesJoinedRows puts a duplicate tombstone of a key in
// the tombstone table (as a hand-made copy or another tool might): the
// MERGE still sees one source row per staged row instead of failing with
// 100090 (duplicate row detected) on every retry.
func TestMergeDeduplicatesJoinedRows(t *testing.T) {
	t.Parallel()
	it := ev{Table: "items", Columns: itemCols}
	e := newEnv(t, nil)
	e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
	e.mustApply(it.Del(20, 2))
	queryRows(t, e.rd, `INSERT INTO ROSETTA.PUBLIC._ROSETTA_TOMB_ITEMS ("ID", "_ROSETTA_LSN", "_ROSETTA_SEQ") VALUES (2, 15, 1)`)
	queryRows(t, e.rd, `INSERT INTO ROSETTA.PUBLIC._ROSETTA_TOMB_ITEMS ("ID", "_ROSETTA_LSN", "_ROSETTA_SEQ") VALUES (1, 5, 1), (1, 6, 1)`)
	// An insert older than the newest tombstone stays out; a newer one and
	// an update of a key with duplicate tombstones apply.
	e.mustApply(it.Ins(18, 2, "old"), it.Upd(30, 1, "a2"))
	e.expect(items, "1|a2|<null>")
	e.mustApply(it.Ins(40, 2, "new"))
	e.expect(items, "1|a2|<null>", "2|new|<null>")
}
