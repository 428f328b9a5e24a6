package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// shape returns the destination table's shape, creating the table, adding
// missing columns, and creating its bookkeeping when the cache does not
// already show everything the batch needs. It returns nil when the batch
// has no columns (a lone truncate) and the table does not exist.
func (d *Driver) shape(ctx context.Context, conn *sql.Conn, b cdc.TableBatch) (*tableShape, error) {
	if s, ok := d.tables[b.Table.Table]; ok && s.covers(b.Columns) {
		return s, nil
	}
	target := ident(d.cfg.Schema, b.Table.Table)
	tombName := tombstoneTableName(d.cfg.Schema, b.Table.Table)
	s := &tableShape{target: target, tomb: ident(bookkeepingSchema, tombName)}
	types, err := d.loadColumns(ctx, conn, b.Table.Table)
	if err != nil {
		return nil, err
	}
	keys := b.KeyColumns()
	var (
		ddl   []string
		fills []contracts.Column // added columns whose existing rows take a value
	)
	created := false
	switch {
	case len(types) == 0 && len(b.Columns) == 0:
		return nil, nil
	case len(types) == 0:
		cols := make([]stageColumn, len(b.Columns))
		for i, c := range b.Columns {
			cols[i] = stageColumn{Name: c.Name, Type: columnType(c.BaseType), Key: c.Key}
		}
		ddl = append(ddl, "CREATE SCHEMA IF NOT EXISTS "+ident(d.cfg.Schema), createTableSQL(target, cols))
		created = true
	default:
		renamed, err := d.renameColumns(ctx, conn, target, b.Table.Table, types, b.Columns)
		if err != nil {
			return nil, err
		}
		if len(renamed) > 0 {
			d.log.Info("renamed destination columns the source renamed", "table", d.cfg.Schema+"."+b.Table.Table, "ddl", renamed)
		}
		lower := map[string]string{}
		for name := range types {
			lower[strings.ToLower(name)] = name
		}
		for _, c := range b.Columns {
			if _, ok := types[c.Name]; ok {
				continue
			}
			if other, ok := lower[strings.ToLower(c.Name)]; ok {
				return nil, sinkrunner.Permanent(fmt.Errorf("column %q is column %q of the destination table: DuckDB identifiers are case-insensitive", c.Name, other))
			}
			ddl = append(ddl, addColumnSQL(target, stageColumn{Name: c.Name, Type: columnType(c.BaseType)}))
			if c.ExistingValue != "" {
				fills = append(fills, c)
			}
			d.log.Info("adding column to destination table", "table", d.cfg.Schema+"."+b.Table.Table, "column", c.Name,
				"existing_rows_value", c.ExistingValue != "")
		}
		for _, v := range []string{lsnCol, seqCol} {
			if _, ok := types[v]; !ok {
				ddl = append(ddl, addVersionSQL(target, v))
			}
		}
		if _, ok := types[colvCol]; !ok {
			// Tables created before column versions: every row's
			// columns have the row's version.
			ddl = append(ddl, "ALTER TABLE "+target+" ADD COLUMN IF NOT EXISTS "+ident(colvCol)+" "+colvType)
		}
		if len(keys) == 0 {
			// A lone truncate names no columns: the stored primary key
			// keys the tombstone table.
			if keys, err = d.loadPrimaryKey(ctx, conn, b.Table.Table); err != nil {
				return nil, err
			}
		}
	}
	ddl = append(ddl, bookkeepingDDL...)
	for _, q := range ddl {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("prepare destination table: %w", err)
		}
	}
	if s.types, err = d.loadColumns(ctx, conn, b.Table.Table); err != nil {
		return nil, err
	}
	if s.source, err = d.markSourceColumns(ctx, conn, target, b.Table.Table, b.Columns); err != nil {
		return nil, err
	}
	for _, c := range fills {
		if err := fillExisting(ctx, conn, target, d.cfg.Schema+"."+b.Table.Table, c, s.types[c.Name]); err != nil {
			return nil, err
		}
	}
	if created {
		d.log.Info("created destination table", "table", d.cfg.Schema+"."+b.Table.Table)
	}
	if len(keys) > 0 {
		keyCols := make([]stageColumn, len(keys))
		for i, k := range keys {
			keyCols[i] = stageColumn{Name: k, Type: s.types[k], Key: true}
		}
		if _, err := conn.ExecContext(ctx, createTombstoneSQL(s.tomb, keyCols)); err != nil {
			return nil, fmt.Errorf("create tombstone table: %w", err)
		}
		s.hasTomb = true
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO "+ident(bookkeepingSchema, registryTable)+
		" (schema_name, table_name, tombstone_table) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		d.cfg.Schema, b.Table.Table, tombName); err != nil {
		return nil, fmt.Errorf("register destination table: %w", err)
	}
	if !s.covers(b.Columns) {
		return nil, fmt.Errorf("destination table %s lacks columns after adding them", target)
	}
	if s.hasTomb {
		d.tables[b.Table.Table] = s
	}
	return s, nil
}

// loadColumns reads a destination table's columns and types; none when it
// is missing. A table whose name differs from table only in case is the
// same table to DuckDB, and a permanent error.
func (d *Driver) loadColumns(ctx context.Context, conn *sql.Conn, table string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT table_name, column_name, data_type FROM duckdb_columns()
		WHERE database_name = current_database() AND lower(schema_name) = lower($1) AND lower(table_name) = lower($2)`,
		d.cfg.Schema, table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s.%s: %w", d.cfg.Schema, table, err)
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var stored, name, typ string
		if err := rows.Scan(&stored, &name, &typ); err != nil {
			return nil, fmt.Errorf("read columns of %s.%s: %w", d.cfg.Schema, table, err)
		}
		if stored != table {
			return nil, sinkrunner.Permanent(fmt.Errorf("table %q is table %q of the destination: DuckDB identifiers are case-insensitive", table, stored))
		}
		types[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s.%s: %w", d.cfg.Schema, table, err)
	}
	return types, nil
}

// loadPrimaryKey reads a table's primary key columns in key order.
func (d *Driver) loadPrimaryKey(ctx context.Context, conn *sql.Conn, table string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT unnest(constraint_column_names) FROM duckdb_constraints()
		WHERE database_name = current_database() AND lower(schema_name) = lower($1) AND table_name = $2
		AND constraint_type = 'PRIMARY KEY'`, d.cfg.Schema, table)
	if err != nil {
		return nil, fmt.Errorf("read primary key of %s.%s: %w", d.cfg.Schema, table, err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("read primary key of %s.%s: %w", d.cfg.Schema, table, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read primary key of %s.%s: %w", d.cfg.Schema, table, err)
	}
	return keys, nil
}

func (s *tableShape) covers(cols []contracts.Column) bool {
	for _, c := range cols {
		if _, ok := s.types[c.Name]; !ok {
			return false
		}
	}
	_, lsn := s.types[lsnCol]
	_, seq := s.types[seqCol]
	_, colv := s.types[colvCol]
	return lsn && seq && colv
}

// tableShape is what the driver knows of a destination table: its columns
// and their types.
type tableShape struct {
	target  string            // quoted schema.table
	tomb    string            // quoted _rosetta.tomb_…
	hasTomb bool              // the tombstone table exists (the key is known)
	types   map[string]string // column -> DuckDB type
	source  map[string]bool   // columns marked as written from the source (markSourceColumns)
}
