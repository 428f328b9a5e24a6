package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
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

// noOpclass matches PostgreSQL's refusal to index a type with btree:
// data type json has no default operator class for access method "btree".
var noOpclass = regexp.MustCompile(`^data type (.+) has no default operator class for access method "btree"$`)

// unindexableKey turns the refusal to create a destination table whose
// primary key holds a column of a type btree cannot index into a permanent
// error naming the table and the key columns of that type. It happens to a
// source table without a primary key under REPLICA IDENTITY FULL, whose
// every column is its key (json, xml, point … columns): no retry can
// create that table, so its changes go to the dead-letter queue, if the
// destination has one, instead of being retried forever. Other errors are
// returned as they are.
func unindexableKey(err error, table string, cols []contracts.Column) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42704" {
		return err
	}
	m := noOpclass.FindStringSubmatch(pgErr.Message)
	if m == nil {
		return err
	}
	var names []string
	for _, c := range cols {
		if c.Key && strings.TrimSuffix(columnType(c.BaseType), "[]") == m[1] {
			names = append(names, fmt.Sprintf("%q (%s)", c.Name, c.Type))
		}
	}
	return sinkrunner.PermanentClass("unindexable_key", fmt.Errorf(
		"%s: key column %s: type %s cannot be part of the destination's primary key (no btree operator class); "+
			"the source table has no primary key, so REPLICA IDENTITY FULL makes every column the key: give it a primary key: %w",
		table, strings.Join(names, ", "), m[1], err))
}
