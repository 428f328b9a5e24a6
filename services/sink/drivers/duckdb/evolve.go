package duckdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

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
