package snowflake

import (
	"encoding/json"
	"fmt"

	"github.com/rosettacdc/rosetta/pkg/cdc"
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
// rows in the same statement, and the default is dropped at once: rows
// written from then on carry their own value (the MERGE names every
// column anyway). DDL commits on its own in Snowflake; one statement keeps
// the fill from being lost between the ADD and a separate UPDATE.
//
// The value is checked and spelled by encode, like every staged value; a
// value the column cannot hold exactly is a permanent error naming the
// table and column. VARIANT and BINARY columns cannot take it: a default
// must be a constant there, and PARSE_JSON or a binary literal is not one
// Rosetta can rely on, so their existing rows hold NULL (docs/snowflake.md).
func addColumnDDL(target, table string, c stageColumn, existing map[string]string) ([]string, error) {
	add := addColumnSQL(target, c)
	v, ok := existing[c.name]
	if !ok || c.typ.kind == kindVariant || c.typ.kind == kindBinary {
		return []string{add}, nil
	}
	text, err := encode(c.typ, c.base, v)
	if err != nil {
		return nil, sinkrunner.Permanent(fmt.Errorf("%s column %s (%s): the value rows existing before the column was added hold: %w",
			table, ident(c.name), c.typ.sql(), err))
	}
	return []string{
		add + " DEFAULT CAST(" + stringLiteral(text) + " AS " + c.typ.sql() + ")",
		"ALTER TABLE " + target + " ALTER COLUMN " + ident(c.name) + " DROP DEFAULT",
	}, nil
}
