package duckdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/colmark"
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

// columnComments returns the comment of every column of the table; DuckDB
// shows a column without a comment as NULL or as an empty string.
func (d *Driver) columnComments(ctx context.Context, conn *sql.Conn, target, table string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT column_name, comment FROM duckdb_columns()
		WHERE database_name = current_database() AND lower(schema_name) = lower($1) AND table_name = $2`, d.cfg.Schema, table)
	if err != nil {
		return nil, fmt.Errorf("read column comments of %s: %w", target, err)
	}
	comments := map[string]string{}
	for rows.Next() {
		var name string
		var comment sql.NullString
		if err := rows.Scan(&name, &comment); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read column comments of %s: %w", target, err)
		}
		comments[name] = comment.String
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read column comments of %s: %w", target, err)
	}
	return comments, nil
}

// markSourceColumns returns the columns of the table that carry
// a colmark, first marking the non-key columns of cols (the batch's
// current source columns) that exist at the destination and carry no
// comment: the columns of a table just created or added to, and, once, the
// source columns of a table created before the driver marked columns. A
// mark whose attnum is missing or differs from the one the source now
// sends is rewritten. A column the user commented is left as it is (and so
// is never treated as dropped or renamed). Key columns are never marked: a
// dropped key column changes the table's key, which no policy handles.
func (d *Driver) markSourceColumns(ctx context.Context, conn *sql.Conn, target, table string, cols []contracts.Column) (map[string]bool, error) {
	comments, err := d.columnComments(ctx, conn, target, table)
	if err != nil {
		return nil, err
	}
	marked := map[string]bool{}
	for name, c := range comments {
		if _, ok := colmark.Parse(c); ok {
			marked[name] = true
		}
	}
	for _, c := range cols {
		comment, ok := comments[c.Name]
		if !ok || c.Key {
			continue
		}
		if attnum, isMark := colmark.Parse(comment); comment != "" && (!isMark || c.Attnum == 0 || attnum == c.Attnum) {
			continue
		}
		if _, err := conn.ExecContext(ctx, "COMMENT ON COLUMN "+target+"."+ident(c.Name)+" IS '"+colmark.For(c.Attnum)+"'"); err != nil {
			return nil, fmt.Errorf("mark column %q of %s as a source column: %w", c.Name, target, err)
		}
		marked[c.Name] = true
	}
	return marked, nil
}

// renameColumns renames the destination columns whose source column was
// renamed (relational.Syntax.RenameColumns).
func (d *Driver) renameColumns(ctx context.Context, conn *sql.Conn, target, table string, types map[string]string, cols []contracts.Column) ([]string, error) {
	comments := func(ctx context.Context) (map[string]string, error) {
		return d.columnComments(ctx, conn, target, table)
	}
	return syntax().RenameColumns(ctx, connExec(conn), comments, target, types, cols)
}

// dropColumns applies the "drop" policy (relational.Syntax.DropColumns).
func dropColumns(ctx context.Context, conn *sql.Conn, target string, names []string) ([]string, error) {
	return syntax().DropColumns(ctx, connExec(conn), nil, target, names)
}
