package duckdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// fillExisting gives the rows of a table a column was just added to the
// value the source's rows had when the column was added there (ALTER
// TABLE … ADD COLUMN … DEFAULT; the change events carry it as the column's
// ExistingValue). The rows the destination holds when the column arrives
// are exactly the rows that existed then: every change written after the
// ALTER lists the column, so the first of them brings it. It runs in the
// batch's transaction right after the ADD COLUMN, before the batch's rows
// are applied, so no row written after the ALTER is overwritten; rows of
// the batch written before it got the value from cdc.Collapse.
//
// The value goes through the column's converter, like every staged value,
// and is bound: a value the column cannot hold exactly is a permanent
// error naming the table and column, not a rounded or NULL column.
func fillExisting(ctx context.Context, conn *sql.Conn, target, table string, c contracts.Column, typ string) error {
	v, err := cdc.ValueFromJSON(json.RawMessage(c.ExistingValue))
	if err != nil || v.Null {
		return sinkrunner.Permanent(fmt.Errorf("%s column %q: existing value %.80s: not a value (%v)", table, c.Name, c.ExistingValue, err))
	}
	conv, err := converterFor(typ)
	if err != nil {
		return sinkrunner.Permanent(fmt.Errorf("%s column %q: %w", table, c.Name, err))
	}
	val, err := conv.convert(v.Text)
	if err != nil {
		return sinkrunner.Permanent(fmt.Errorf("%s column %q (%s): value %.80q that rows existing before the column was added hold: %w",
			table, c.Name, typ, v.Text, err))
	}
	q := "UPDATE " + target + " SET " + ident(c.Name) + " = CAST(CAST(? AS " + wireName(conv.wire) + ") AS " + typ + ")"
	if _, err := conn.ExecContext(ctx, q, val); err != nil {
		return fmt.Errorf("fill column %q of the rows already in %s: %w", c.Name, table, err)
	}
	return nil
}

// sourceMark is the comment the driver puts on the destination columns it
// writes from a source column, so that a column the source no longer lists
// can be told from one a user added at the destination (which the driver
// never writes, drops or nulls).
const sourceMark = "rosetta: source column"

// markSourceColumns returns the columns of the table that carry
// sourceMark, first marking the non-key columns of cols (the batch's
// current source columns) that exist at the destination and carry no
// comment: the columns of a table just created or added to, and, once, the
// source columns of a table created before the driver marked columns. A
// column the user commented is left as it is (and so is never treated as
// dropped). Key columns are never marked: a dropped key column changes the
// table's key, which no policy handles.
func (d *Driver) markSourceColumns(ctx context.Context, conn *sql.Conn, target, table string, cols []contracts.Column) (map[string]bool, error) {
	rows, err := conn.QueryContext(ctx, `SELECT column_name, comment FROM duckdb_columns()
		WHERE database_name = current_database() AND lower(schema_name) = lower($1) AND table_name = $2`, d.cfg.Schema, table)
	if err != nil {
		return nil, fmt.Errorf("read column comments of %s: %w", target, err)
	}
	comments := map[string]sql.NullString{}
	for rows.Next() {
		var name string
		var comment sql.NullString
		if err := rows.Scan(&name, &comment); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read column comments of %s: %w", target, err)
		}
		comments[name] = comment
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read column comments of %s: %w", target, err)
	}
	marked := map[string]bool{}
	for name, c := range comments {
		if c.Valid && c.String == sourceMark {
			marked[name] = true
		}
	}
	for _, c := range cols {
		// DuckDB shows a column without a comment as NULL or ''.
		if comment, ok := comments[c.Name]; !ok || comment.String != "" || c.Key {
			continue
		}
		if _, err := conn.ExecContext(ctx, "COMMENT ON COLUMN "+target+"."+ident(c.Name)+" IS '"+sourceMark+"'"); err != nil {
			return nil, fmt.Errorf("mark column %q of %s as a source column: %w", c.Name, target, err)
		}
		marked[c.Name] = true
	}
	return marked, nil
}

// droppedColumns lists, sorted, the marked (source) columns of the
// destination table that the batch's current columns lack: columns
// dropped (or renamed) at the source. cols must be the newest change's
// list (TableBatch.Without(TableBatch.Dropped)).
func droppedColumns(marked map[string]bool, cols []contracts.Column) []string {
	var gone []string
	for name := range marked {
		if !slices.ContainsFunc(cols, func(c contracts.Column) bool { return c.Name == name }) {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	return gone
}

// dropColumns applies the "drop" policy: the destination columns whose
// source column was dropped go too, in the batch's transaction, before its
// rows are staged.
func dropColumns(ctx context.Context, conn *sql.Conn, target string, names []string) ([]string, error) {
	ddl := make([]string, len(names))
	for i, n := range names {
		ddl[i] = "ALTER TABLE " + target + " DROP COLUMN IF EXISTS " + ident(n)
		if _, err := conn.ExecContext(ctx, ddl[i]); err != nil {
			return nil, fmt.Errorf("drop destination column %q: %w", n, err)
		}
	}
	return ddl, nil
}
