package snapshot

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// ErrNoPrimaryKey is returned for a table without a primary key: batches
// are read in primary key order (keyset pagination).
var ErrNoPrimaryKey = errors.New("table has no primary key; snapshots and backfills read in primary key order")

// ErrNoTable is returned when the table does not exist.
var ErrNoTable = errors.New("table does not exist")

// Column is one published column of a table.
type Column struct {
	Name   string
	TypeID uint32
	TypMod int32
	// Type is format_type's text (schema-qualified for non-built-in
	// types); filter values and key values are cast to it.
	Type string
	Key  bool
}

// Table is a source table as a snapshot reads it: the columns pgoutput
// publishes (no dropped or generated ones), in attribute order.
type Table struct {
	Schema, Name string
	OID          uint32
	Identity     byte
	Columns      []Column
	// Key holds indexes into Columns of the primary key columns, in the
	// primary key's order.
	Key []int
}

// Quote quotes identifiers for SQL; every identifier this package puts in
// SQL goes through it.
func Quote(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// Column returns the column named name.
func (t Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// LoadTable reads schema.name's columns and primary key from the catalog.
func LoadTable(ctx context.Context, conn *pgx.Conn, schema, name string) (Table, error) {
	t := Table{Schema: schema, Name: name}
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// Non-built-in types print schema-qualified, like capture's.
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO pg_catalog"); err != nil {
			return fmt.Errorf("set search_path: %w", err)
		}
		var ident string
		err := tx.QueryRow(ctx, `SELECT c.oid, c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, schema, name).Scan(&t.OID, &ident)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoTable
		}
		if err != nil {
			return fmt.Errorf("query table: %w", err)
		}
		if ident != "" {
			t.Identity = ident[0]
		}
		rows, err := tx.Query(ctx, `SELECT a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod),
			COALESCE(k.ord, 0)
			FROM pg_attribute a
			LEFT JOIN (SELECT u.attnum, u.ord FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS u(attnum, ord)
			           WHERE i.indrelid = $1 AND i.indisprimary) k ON k.attnum = a.attnum
			WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
			ORDER BY a.attnum`, t.OID)
		if err != nil {
			return fmt.Errorf("query columns: %w", err)
		}
		defer rows.Close()
		keyOrd := map[int64]int{}
		for rows.Next() {
			var c Column
			var ord int64
			if err := rows.Scan(&c.Name, &c.TypeID, &c.TypMod, &c.Type, &ord); err != nil {
				return fmt.Errorf("scan columns: %w", err)
			}
			if ord > 0 {
				c.Key = true
				keyOrd[ord] = len(t.Columns)
			}
			t.Columns = append(t.Columns, c)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("query columns: %w", err)
		}
		for i := int64(1); i <= int64(len(keyOrd)); i++ {
			t.Key = append(t.Key, keyOrd[i])
		}
		return nil
	})
	if err != nil {
		return Table{}, fmt.Errorf("load %s.%s: %w", schema, name, err)
	}
	if len(t.Key) == 0 {
		return Table{}, fmt.Errorf("load %s.%s: %w", schema, name, ErrNoPrimaryKey)
	}
	return t, nil
}

// relationMessage describes t the way pgoutput would, for the decoder.
// Primary key columns carry flag 1 (replica identity member).
func (t Table) relationMessage() *pglogrepl.RelationMessage {
	m := &pglogrepl.RelationMessage{
		RelationID:      t.OID,
		Namespace:       t.Schema,
		RelationName:    t.Name,
		ReplicaIdentity: t.Identity,
		ColumnNum:       uint16(len(t.Columns)),
	}
	for _, c := range t.Columns {
		var flags uint8
		if c.Key {
			flags = 1
		}
		m.Columns = append(m.Columns, &pglogrepl.RelationMessageColumn{Flags: flags, Name: c.Name, DataType: c.TypeID, TypeModifier: c.TypMod})
	}
	return m
}
