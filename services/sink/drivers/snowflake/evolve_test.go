package snowflake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// exec runs a statement at the destination as a user would, through
// gosnowflake.
func (e *env) exec(q string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.rd.ExecContext(ctx, q); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// columnOf queries INFORMATION_SCHEMA.COLUMNS about column name of table T.
// numberType reads a NUMBER column's type from INFORMATION_SCHEMA as
// Snowflake gives it: NUMBER(p,s).
const numberType = "DATA_TYPE || '(' || NUMERIC_PRECISION || ',' || NUMERIC_SCALE || ')'"

func columnOf(what, name string) string {
	return `SELECT ` + what + ` FROM ROSETTA.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'PUBLIC' AND TABLE_NAME = 'T' AND COLUMN_NAME = '` + name + `'`
}

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
	f := cdctest.NewDroppedB(true)
	ins1, upd1, upd2 := f.InsBefore, f.UpdBefore, f.WriteAfter
	run := func(t *testing.T, settings map[string]any, handMade bool) *env {
		t.Helper()
		e := newEnv(t, settings)
		if handMade {
			e.exec(`CREATE TABLE ROSETTA.PUBLIC.T (ID NUMBER(10,0) PRIMARY KEY, A VARCHAR, B VARCHAR)`)
		}
		e.mustApply(ins1(10, 1, "a1", "b1"), ins1(10, 2, "a2", "b2"), ins1(10, 3, "a3", "b3"), ins1(10, 5, "a5", "b5"))
		// A column the user adds at the destination: never the source's.
		e.exec(`ALTER TABLE T ADD COLUMN NOTE VARCHAR`)
		e.exec(`UPDATE T SET NOTE = 'mine'`)
		// One batch across the drop: the change of row 1 was written
		// before it (lists b), the change of row 2 after it.
		e.mustApply(upd1(20, 1, "a1x", "b1x"), upd2(contracts.OpUpdate, 21, 2, "a2x"))
		// A later batch: only changes written after the drop.
		e.mustApply(upd2(contracts.OpUpdate, 30, 3, "a3x"), upd2(contracts.OpCreate, 30, 4, "a4"))
		return e
	}
	for _, tt := range []struct {
		name     string
		settings map[string]any
		handMade bool
	}{{"keep by default", nil, false}, {"keep, table created by hand", map[string]any{"dropped_columns": "keep"}, true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := run(t, tt.settings, tt.handMade)
			e.expect(`SELECT ID, A, B, NOTE FROM T ORDER BY ID`,
				"1|a1x|<null>|mine", "2|a2x|<null>|mine", "3|a3x|<null>|mine", "4|a4|<null>|<null>", "5|a5|b5|mine")
			e.expect(columnOf("COMMENT", "B"), colmark.For(3))
			e.expect(columnOf("COMMENT", "NOTE"), "<null>")
			// The source adds b back: rows written from then on carry it.
			e.mustApply(upd1(40, 3, "a3y", "b3y"))
			e.expect(`SELECT ID, A, B FROM T WHERE ID = 3`, "3|a3y|b3y")
		})
	}
	t.Run("drop", func(t *testing.T) {
		t.Parallel()
		e := run(t, map[string]any{"dropped_columns": "drop"}, false)
		e.expect(columnOf("COUNT(*)", "B"), "0")
		e.expect(`SELECT ID, A, NOTE FROM T ORDER BY ID`,
			"1|a1x|mine", "2|a2x|mine", "3|a3x|mine", "4|a4|<null>", "5|a5|mine")
		// A redelivered change from before the drop adds the column
		// back (empty, version-guarded), and the next change from after
		// the drop drops it again.
		e.mustApply(upd1(20, 1, "a1x", "b1x"))
		e.mustApply(upd2(contracts.OpUpdate, 50, 5, "a5x"))
		e.expect(columnOf("COUNT(*)", "B"), "0")
		e.expect(`SELECT ID, A, NOTE FROM T WHERE ID IN (1, 5) ORDER BY ID`, "1|a1x|mine", "5|a5x|mine")
	})
}

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
	row := func(e ev, op contracts.Op, lsn uint64, id int, name, a, b string) contracts.Change {
		return e.Change(op, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "", fmt.Sprintf(`{"id":%d,%q:%q,"b":%q}`, id, name, a, b))
	}
	run := func(t *testing.T, policy string, attnums, plainMarks bool) *env {
		t.Helper()
		e := newEnv(t, map[string]any{"dropped_columns": policy})
		before, after := ev{Table: "t", Columns: cols(attnums, "a")}, ev{Table: "t", Columns: cols(attnums, "a2")}
		if plainMarks {
			e.exec(`CREATE TABLE ROSETTA.PUBLIC.T (ID NUMBER(10,0) PRIMARY KEY, A VARCHAR, B VARCHAR)`)
			e.exec(`ALTER TABLE T ALTER COLUMN A COMMENT '` + colmark.Prefix + `', COLUMN B COMMENT '` + colmark.Prefix + `'`)
		}
		e.mustApply(row(before, contracts.OpCreate, 10, 1, "a", "a1", "b1"), row(before, contracts.OpCreate, 10, 2, "a", "a2", "b2"),
			row(before, contracts.OpCreate, 10, 3, "a", "a3", "b3"))
		// One batch across the rename: row 1's change was written before
		// it (lists a), row 2's after it (lists a2).
		e.mustApply(row(before, contracts.OpUpdate, 20, 1, "a", "a1x", "b1x"), row(after, contracts.OpUpdate, 21, 2, "a2", "a2x", "b2x"))
		e.mustApply(row(after, contracts.OpCreate, 30, 4, "a2", "a4", "b4"))
		return e
	}
	for _, tt := range []struct {
		name, policy string
		plainMarks   bool
	}{{"keep", DroppedKeep, false}, {"drop", DroppedDrop, false}, {"plain marks", DroppedKeep, true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := run(t, tt.policy, true, tt.plainMarks)
			e.expect(columnOf("COUNT(*)", "A"), "0")
			e.expect(`SELECT ID, A2, B FROM T ORDER BY ID`, "1|a1x|b1x", "2|a2x|b2x", "3|a3|b3", "4|a4|b4")
			e.expect(columnOf("COMMENT", "A2"), colmark.For(2))
		})
	}
	t.Run("no attnums", func(t *testing.T) {
		t.Parallel()
		e := run(t, DroppedKeep, false, false)
		// The old behaviour: a is a dropped column (NULL in every row
		// written from the batch across the rename on), a2 a new one.
		e.expect(`SELECT ID, A, A2, B FROM T ORDER BY ID`,
			"1|<null>|<null>|b1x", "2|<null>|a2x|b2x", "3|a3|<null>|b3", "4|<null>|a4|b4")
	})
}

// TestEvolveRetriedAfterDDL fails the MERGE of the batch that renames one
// column and drops another (policy drop) after the driver's DDL, which
// Snowflake commits at once, has run. The retry finds the table already
// renamed and dropped, runs no DDL again, and applies the batch exactly
// once.
func TestEvolveRetriedAfterDDL(t *testing.T) {
	t.Parallel()
	v1 := []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true, Attnum: 1},
		{Name: "a", Type: "text", BaseType: "text", Attnum: 2}, {Name: "b", Type: "text", BaseType: "text", Attnum: 3}}
	v2 := []contracts.Column{v1[0], {Name: "a2", Type: "text", BaseType: "text", Attnum: 2}}
	before, after := ev{Table: "t", Columns: v1}, ev{Table: "t", Columns: v2}
	e := newEnv(t, map[string]any{"dropped_columns": "drop"})
	e.mustApply(before.Change(contracts.OpCreate, 10, 1, `{"id":1}`, "", `{"id":1,"a":"a1","b":"b1"}`),
		before.Change(contracts.OpCreate, 10, 2, `{"id":2}`, "", `{"id":2,"a":"a2","b":"b2"}`))
	batch := []contracts.Change{after.Change(contracts.OpUpdate, 20, 1, `{"id":2}`, "", `{"id":2,"a2":"a2x"}`),
		after.Change(contracts.OpCreate, 20, 2, `{"id":3}`, "", `{"id":3,"a2":"a3"}`)}
	e.srv.FailNext("MERGE INTO", 1)
	if err := e.apply(batch...); err == nil || sinkrunner.IsPermanent(err) {
		t.Fatalf("apply with a failing MERGE = %v; want a transient error", err)
	}
	// The DDL stayed (Snowflake commits it), the rows did not.
	e.expect(`SELECT ID, A2 FROM T ORDER BY ID`, "1|a1", "2|a2")
	e.mustApply(batch...)
	e.expect(`SELECT * FROM T ORDER BY ID`, "1|a1|10|1|<null>", "2|a2x|20|1|<null>", "3|a3|20|2|<null>")
	e.expect(columnOf("COMMENT", "A2"), colmark.For(2))
}

// TestWidenedColumns widens source columns (smallint to integer to bigint,
// numeric(6,2) to numeric(12,2), varchar(5) to varchar(20) to text): the
// destination NUMBER and hand-made VARCHAR(5) columns get the wider type
// before the batch, and values only the wider type holds arrive. A change of scale, which Snowflake cannot make in place, is no
// widening: a value the column cannot hold exactly fails permanently,
// naming the column and table.
func TestWidenedColumns(t *testing.T) {
	t.Parallel()
	cols := func(n, amount string) []contracts.Column {
		return []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true, Attnum: 1},
			{Name: "n", Type: n, BaseType: n, Attnum: 2}, {Name: "amount", Type: amount, BaseType: amount, Attnum: 3}}
	}
	ins := func(c []contracts.Column, lsn uint64, id int, n, amount string) contracts.Change {
		return ev{Table: "t", Columns: c}.Change(contracts.OpCreate, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "",
			fmt.Sprintf(`{"id":%d,"n":%s,"amount":%q}`, id, n, amount))
	}
	e := newEnv(t, nil)
	e.mustApply(ins(cols("smallint", "numeric(6,2)"), 10, 1, "32767", "9999.99"))
	e.mustApply(ins(cols("integer", "numeric(12,2)"), 20, 2, "2147483647", "9999999999.99"))
	e.expect(columnOf(numberType, "N"), "NUMBER(10,0)")
	e.expect(columnOf(numberType, "AMOUNT"), "NUMBER(12,2)")
	e.mustApply(ins(cols("bigint", "numeric(12,2)"), 30, 3, "9223372036854775807", "-0.01"))
	e.expect(columnOf(numberType, "N"), "NUMBER(19,0)")
	e.expect(`SELECT ID, N, AMOUNT FROM T ORDER BY ID`,
		"1|32767|9999.99", "2|2147483647|9999999999.99", "3|9223372036854775807|-0.01")

	err := e.apply(ins(cols("bigint", "numeric(14,4)"), 40, 4, "1", "1.2345"))
	var re *RowError
	if !sinkrunner.IsPermanent(err) || !errors.As(err, &re) || re.Column != "amount" || !strings.Contains(err.Error(), "app.t") {
		t.Fatalf("a value with more fraction digits than the column's scale = %v; want a permanent error naming app.t and amount", err)
	}
	e.expect(columnOf(numberType, "AMOUNT"), "NUMBER(12,2)")
	// Values the column still holds exactly arrive.
	e.mustApply(ins(cols("bigint", "numeric(14,4)"), 41, 5, "1", "1.2500"))
	e.expect(`SELECT ID, AMOUNT FROM T WHERE ID = 5`, "5|1.25")

	// A VARCHAR(n) created by hand follows the source's longer varchar,
	// then its text.
	e.exec(`CREATE TABLE ROSETTA.PUBLIC.V (ID NUMBER(10,0) PRIMARY KEY, S VARCHAR(5))`)
	str := func(typ string, lsn uint64, id int, s string) contracts.Change {
		c := []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true, Attnum: 1}, {Name: "s", Type: typ, BaseType: typ, Attnum: 2}}
		return ev{Table: "v", Columns: c}.Change(contracts.OpCreate, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "", fmt.Sprintf(`{"id":%d,"s":%q}`, id, s))
	}
	e.mustApply(str("character varying(5)", 50, 1, "abcde"))
	e.mustApply(str("character varying(20)", 51, 2, strings.Repeat("x", 20)))
	e.mustApply(str("text", 52, 3, strings.Repeat("y", 1000)))
	e.expect(`SELECT ID, LENGTH(S) FROM V ORDER BY ID`, "1|5", "2|20", "3|1000")
}

// TestWidenTo pins which destination types are widened for which source
// types.
func TestWidenTo(t *testing.T) {
	t.Parallel()
	num := func(p, s int) colType { return colType{kind: kindNumber, precision: p, scale: s} }
	text := func(n int) colType { return colType{kind: kindText, length: n} }
	for _, tt := range []struct {
		dest colType
		base string
		key  bool
		want string // "" for no widening
	}{
		{num(5, 0), "integer", false, "NUMBER(10,0)"},
		{num(10, 0), "bigint", false, "NUMBER(19,0)"},
		{num(10, 0), "bigint", true, ""},
		{num(19, 0), "integer", false, ""},
		{num(6, 2), "numeric(12,2)", false, "NUMBER(12,2)"},
		{num(6, 2), "numeric(12,4)", false, ""},
		{num(6, 2), "numeric", false, ""},
		{num(38, 0), "bigint", false, ""},
		{text(5), "character varying(20)", false, "VARCHAR(20)"},
		{text(5), "character(8)", false, "VARCHAR(8)"},
		{text(5), "text", false, "VARCHAR"},
		{text(20), "character varying(10)", false, ""},
		{text(0), "text", false, ""},
		{text(36), "uuid", false, ""},
		{colType{kind: kindTimestampNTZ, precision: 3}, "timestamp(6) without time zone", false, ""},
	} {
		got, ok := widenTo(tt.dest, stageColumn{name: "C", base: tt.base, typ: mapType(tt.base), key: tt.key})
		if s := got.sql(); ok != (tt.want != "") || ok && s != tt.want {
			t.Errorf("widenTo(%s, %s) = %s, %v; want %q", tt.dest.sql(), tt.base, s, ok, tt.want)
		}
	}
}
