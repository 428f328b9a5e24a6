package postgres

import (
	"encoding/json"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// addColumnDDL adds a source column to an existing destination table.
//
// A column added at the source with a non-volatile default gave every row
// that existed then that value without a change for any of them; the
// change events carry it as the column's ExistingValue. The rows the
// destination holds when the column arrives are exactly those rows (every
// change written after the ALTER lists the column, so the first of them
// brings it), so the column is added with that value as its default, which
// fills them (PostgreSQL 11 and later store it once, without rewriting the
// table), and the default is dropped at once: rows written from then on
// carry their own value. Both statements run in the batch's transaction,
// before its rows are applied, so no row of the batch is overwritten; rows
// of the batch written before the ALTER were given the value by
// cdc.Collapse.
func addColumnDDL(target string, c contracts.Column) ([]string, error) {
	add := addColumnSQL(target, stageColumn{Name: c.Name, Type: columnType(c.BaseType)})
	if c.ExistingValue == "" {
		return []string{add}, nil
	}
	v, err := cdc.ValueFromJSON(json.RawMessage(c.ExistingValue))
	if err != nil {
		return nil, err
	}
	if v.Null {
		return []string{add}, nil
	}
	return []string{
		add + " DEFAULT " + quoteLiteral(v.Text),
		"ALTER TABLE " + target + " ALTER COLUMN " + ident(c.Name) + " DROP DEFAULT",
	}, nil
}

// quoteLiteral quotes s as an escape string constant (E'…'), which means
// the same whatever standard_conforming_strings is: DDL cannot take bind
// parameters. Text values never hold a NUL byte.
func quoteLiteral(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}
