package snowflake

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// existingValues maps the Snowflake names of a batch's columns that carry
// an ExistingValue (ALTER TABLE … ADD COLUMN … DEFAULT at the source) to
// that value's PostgreSQL text.
func existingValues(b cdc.TableBatch) map[string]string {
	var out map[string]string
	for _, c := range b.Columns {
		if c.ExistingValue == "" {
			continue
		}
		v, err := cdc.ValueFromJSON(json.RawMessage(c.ExistingValue))
		if err != nil || v.Null {
			continue // cdc.Check refused a malformed one already
		}
		if out == nil {
			out = map[string]string{}
		}
		out[destName(c.Name)] = v.Text
	}
	return out
}

// addColumnDDL adds a source column to an existing destination table.
//
// A column added at the source with a non-volatile default gave every row
// that existed then that value without a change for any of them; the
// change events carry it. The rows the destination holds when the column
// arrives are exactly those rows (every change written after the ALTER
// lists the column, so the first of them brings it), so the column is
// added with that value as its default, which Snowflake gives the existing
// rows in the same statement. DDL commits on its own in Snowflake; one
// statement keeps the fill from being lost between the ADD and a separate
// UPDATE. The default stays: Snowflake refuses DROP DEFAULT on a column
// whose default an ALTER TABLE defined, and keeping it is harmless: the
// MERGE names every column of the batch, so rows the driver writes carry
// their own value, and a row inserted from a change older than the column
// gets the value the source gave that row too.
//
// The value is checked and spelled by encode, like every staged value; a
// value the column cannot hold exactly is a permanent error naming the
// table and column. VARIANT and BINARY columns cannot take it: a default
// must be a constant there, and PARSE_JSON or a binary literal is not one
// Rosetta can rely on, so their existing rows hold NULL (docs/snowflake.md).
// filled reports whether the column takes the existing rows' value.
func addColumnDDL(target, table string, c stageColumn, existing map[string]string) (ddl []string, filled bool, err error) {
	add := addColumnSQL(target, c)
	v, ok := existing[c.name]
	if !ok || c.typ.kind == kindVariant || c.typ.kind == kindBinary {
		return []string{add}, false, nil
	}
	text, err := encode(c.typ, c.base, v)
	if err != nil {
		return nil, false, sinkrunner.Permanent(fmt.Errorf("%s column %s (%s): the value rows existing before the column was added hold: %w",
			table, ident(c.name), c.typ.sql(), err))
	}
	return []string{add + " DEFAULT CAST(" + stringLiteral(text) + " AS " + c.typ.sql() + ")"}, true, nil
}

// columnComments reads the comment of every column of table (in the
// configured schema) from the database's INFORMATION_SCHEMA.COLUMNS; ""
// stands for no comment. Snowflake keeps a column's comment across RENAME
// COLUMN, so a mark follows its column.
func (d *Driver) columnComments(ctx context.Context, conn *sql.Conn, table string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, columnCommentsSQL(d.cfg.database), d.cfg.schema, table)
	if err != nil {
		return nil, fmt.Errorf("read column comments of %s: %w", table, err)
	}
	defer rows.Close()
	comments := map[string]string{}
	for rows.Next() {
		var name string
		var comment sql.NullString
		if err := rows.Scan(&name, &comment); err != nil {
			return nil, fmt.Errorf("read column comments of %s: %w", table, err)
		}
		comments[name] = comment.String
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read column comments of %s: %w", table, err)
	}
	return comments, nil
}

// loadTable reads a destination table's columns and types (describe) and,
// when it exists, its column comments and which columns carry a colmark.
func (d *Driver) loadTable(ctx context.Context, conn *sql.Conn, target, table string) (*tableState, error) {
	st, err := describe(ctx, conn, target)
	if err != nil || !st.exists {
		return st, err
	}
	if st.comments, err = d.columnComments(ctx, conn, table); err != nil {
		return nil, err
	}
	st.source = map[string]bool{}
	for name, c := range st.comments {
		if _, ok := colmark.Parse(c); ok {
			st.source[name] = true
		}
	}
	return st, nil
}

// renameKey is a column type as far as a rename compares it: what the
// result metadata Snowflake reports can tell apart (it reports no
// fractional-second precision of times and timestamps), and without the
// length of VARCHAR and BINARY, which new columns never declare.
func renameKey(t colType) string {
	switch t.kind {
	case kindTime, kindTimestampNTZ, kindTimestampTZ, kindTimestampLTZ:
		t.precision = 9
	case kindText, kindBinary:
		t.length = 0
	}
	return t.sql()
}

// renameColumns renames the destination columns whose source column was
// renamed (colmark.Renames): a column of cols (the newest change's list)
// the table lacks, whose attnum a marked column carries, whose name cols
// no longer lists, and whose type is the one the new column would get. It
// runs before missing columns are added, so the rows the table holds keep
// their values under the new name instead of a new, NULL column appearing
// beside the old one. st is updated to the renamed columns. Decided from
// the table as just read, it is a no-op when run again after a crash: the
// new name then exists. It returns the statements run.
func (d *Driver) renameColumns(ctx context.Context, conn *sql.Conn, target string, st *tableState, cols []stageColumn) ([]string, error) {
	if !slices.ContainsFunc(cols, func(c stageColumn) bool { _, ok := st.types[c.name]; return !ok && c.attnum > 0 && !c.key }) {
		return nil, nil
	}
	destTypes := make(map[string]string, len(st.types))
	for n, t := range st.types {
		destTypes[n] = renameKey(t)
	}
	src := make([]contracts.Column, len(cols))
	newType := make(map[string]string, len(cols))
	for i, c := range cols {
		src[i] = contracts.Column{Name: c.name, Attnum: c.attnum, Key: c.key}
		newType[c.name] = renameKey(c.typ)
	}
	var ddl []string
	for _, r := range colmark.Renames(st.comments, destTypes, src, func(c contracts.Column) string { return newType[c.Name] }) {
		q := renameColumnSQL(target, r.Old, r.New)
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return ddl, fmt.Errorf("rename destination column %s to %s: %w", ident(r.Old), ident(r.New), err)
		}
		ddl = append(ddl, q)
		st.types[r.New], st.comments[r.New], st.source[r.New] = st.types[r.Old], st.comments[r.Old], st.source[r.Old]
		delete(st.types, r.Old)
		delete(st.comments, r.Old)
		delete(st.source, r.Old)
	}
	return ddl, nil
}

// markSourceColumns marks, with one ALTER TABLE … ALTER COLUMN … COMMENT
// statement, the non-key columns of cols (the batch's current source
// columns) that exist at the destination and carry no comment: the
// columns of a table just created or added to, and, once, the source
// columns of a table created before the driver marked columns. A mark
// whose attnum is missing or differs from the one the source now sends is
// rewritten. A column someone else commented is left as it is (and so is
// never treated as dropped or renamed), and so is every column a user
// added that the source does not list. Key columns are never marked: a
// dropped key column changes the table's key, which no policy handles.
//
// Setting a comment needs the table's ownership: on a table the role only
// writes through grants, nothing is marked (a warning says so), so nothing
// there is ever dropped, renamed or written NULL.
func (d *Driver) markSourceColumns(ctx context.Context, conn *sql.Conn, target, table string, st *tableState, cols []stageColumn) error {
	var items []string
	var marked []stageColumn
	for _, c := range cols {
		_, known := st.types[c.name]
		_, foreign := st.foreign[c.name]
		if c.key || !known && !foreign {
			continue
		}
		comment := st.comments[c.name]
		if attnum, isMark := colmark.Parse(comment); comment != "" && (!isMark || c.attnum == 0 || attnum == c.attnum) {
			continue
		}
		items = append(items, markItem(c.name, c.attnum))
		marked = append(marked, c)
	}
	if len(items) == 0 {
		return nil
	}
	if _, err := conn.ExecContext(ctx, alterColumnsSQL(target, items)); err != nil {
		var se *sf.SnowflakeError
		if errors.As(err, &se) && (se.Number == 3001 || se.SQLState == "42501") {
			d.log.Warn("cannot mark the source columns of a destination table the role does not own: "+
				"columns dropped or renamed at the source stay as they are there", "table", table, "error", err)
			return nil
		}
		return fmt.Errorf("mark source columns of %s: %w", target, err)
	}
	for _, c := range marked {
		st.comments[c.name] = colmark.For(c.attnum)
		st.source[c.name] = true
	}
	return nil
}

// stringSourceLength is the declared length of a PostgreSQL string type,
// 0 for an unbounded one; ok is false for every other type.
func stringSourceLength(base string) (n int, ok bool) {
	switch base {
	case "text", "character varying":
		return 0, true
	}
	for _, p := range []string{"character varying(", "character("} {
		if digits, found := strings.CutPrefix(base, p); found {
			n, err := strconv.Atoi(strings.TrimSuffix(digits, ")"))
			return n, err == nil && n > 0
		}
	}
	return 0, false
}

// widenTo returns the type a destination column of type dest is widened
// to so that it holds every value of the source column c now sends, keeping
// every value it holds, when Snowflake can do that in place (ALTER COLUMN
// … SET DATA TYPE changes only a NUMBER's precision and a VARCHAR's
// length): a NUMBER with the same scale and more digits (smallint to
// integer to bigint, numeric(p,s) to numeric(p2,s)), a VARCHAR(n) for a
// longer or unbounded string. Key columns are never widened (the
// tombstone table repeats their type). Every other difference (a new
// scale, a new type) is left to the check of each value against the
// column's current type (encode), which refuses, permanently and naming
// the table, column and row, a value the column would not hold exactly.
func widenTo(dest colType, c stageColumn) (colType, bool) {
	if c.key {
		return dest, false
	}
	switch dest.kind {
	case kindNumber:
		sent := mapType(c.base)
		if sent.kind == kindNumber && sent.scale == dest.scale && sent.precision > dest.precision {
			return sent, true
		}
	case kindText:
		n, ok := stringSourceLength(c.base)
		if ok && dest.length > 0 && (n == 0 || n > dest.length) {
			dest.length = n
			return dest, true
		}
	}
	return dest, false
}

// widenings lists, as items of one ALTER TABLE … ALTER statement, the
// columns of cols widenTo widens in st.
func (st *tableState) widenings(cols []stageColumn) []string {
	var items []string
	for _, c := range cols {
		if dest, ok := st.types[c.name]; ok {
			if to, widen := widenTo(dest, c); widen {
				items = append(items, widenItem(c.name, to))
			}
		}
	}
	return items
}

// dropColumns applies the "drop" policy to the columns the source dropped:
// one ALTER TABLE … DROP COLUMN each, before the batch's transaction.
// names come from the table as read (or cached), so a retry after a crash
// between the statements finds only the columns still there (a stale
// cache fails the statement, which drops the cache: the retry reads the
// table again).
func dropColumns(ctx context.Context, conn *sql.Conn, target string, st *tableState, names []string) ([]string, error) {
	var ddl []string
	for _, n := range names {
		q := dropColumnSQL(target, n)
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return ddl, fmt.Errorf("drop destination column %s: %w", ident(n), err)
		}
		ddl = append(ddl, q)
		delete(st.types, n)
		delete(st.comments, n)
		delete(st.source, n)
	}
	return ddl, nil
}

// destColumns lists cols as colmark takes them: their Snowflake names.
func destColumns(cols []stageColumn) []contracts.Column {
	out := make([]contracts.Column, len(cols))
	for i, c := range cols {
		out[i] = contracts.Column{Name: c.name, Attnum: c.attnum, Key: c.key}
	}
	return out
}
