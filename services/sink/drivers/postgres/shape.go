package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// tableShape is what the driver knows of a destination table: its columns
// and their types. It is a cache: any failed Apply drops it, and a batch
// with a column it does not list reloads it from the catalog.
type tableShape struct {
	target  string            // quoted schema.table
	tomb    string            // quoted _rosetta.tomb_…
	hasTomb bool              // the tombstone table exists (the key is known)
	types   map[string]string // column -> type as format_type prints it
	source  map[string]bool   // columns marked as written from the source (markSourceColumns)
}

// shape returns the destination table's shape, creating the table, adding
// missing columns, and creating its bookkeeping when the cache does not
// already show everything the batch needs. It returns nil when the batch
// has no columns (a lone truncate) and the table does not exist.
func (d *Driver) shape(ctx context.Context, tx pgx.Tx, b cdc.TableBatch) (*tableShape, error) {
	if s, ok := d.tables[b.Table.Table]; ok && s.covers(b.Columns) {
		return s, nil
	}
	target := ident(d.cfg.Schema, b.Table.Table)
	tombName := tombstoneTableName(d.cfg.Schema, b.Table.Table)
	s := &tableShape{target: target, tomb: ident(bookkeepingSchema, tombName)}
	// Take the DDL lock before reading, so that what is read is still
	// true when the DDL below runs.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ddlLockKey); err != nil {
		return nil, fmt.Errorf("lock for ddl: %w", err)
	}
	types, err := loadColumns(ctx, tx, target)
	if err != nil {
		return nil, err
	}
	keys := b.KeyColumns()
	var ddl []string
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
		renamed, err := renameColumns(ctx, tx, target, types, b.Columns)
		if err != nil {
			return nil, err
		}
		if len(renamed) > 0 {
			d.log.Info("renamed destination columns the source renamed", "table", d.cfg.Schema+"."+b.Table.Table, "ddl", renamed)
		}
		for _, c := range b.Columns {
			if _, ok := types[c.Name]; !ok {
				add, err := addColumnDDL(target, c)
				if err != nil {
					return nil, sinkrunner.Permanent(fmt.Errorf("add column %q to %s: %w", c.Name, target, err))
				}
				ddl = append(ddl, add...)
				d.log.Info("adding column to destination table", "table", d.cfg.Schema+"."+b.Table.Table, "column", c.Name,
					"existing_rows_value", c.ExistingValue != "")
			}
		}
		for _, v := range []string{lsnCol, seqCol} {
			if _, ok := types[v]; !ok {
				ddl = append(ddl, addVersionSQL(target, v))
			}
		}
		if _, ok := types[colvCol]; !ok {
			// Tables created before column versions: every row's
			// columns have the row's version. A table the sink's role
			// does not own keeps going without (ownsTable).
			owner, err := ownsTable(ctx, tx, target)
			if err != nil {
				return nil, err
			}
			if owner {
				ddl = append(ddl, "ALTER TABLE "+target+" ADD COLUMN IF NOT EXISTS "+ident(colvCol)+" jsonb")
			} else {
				d.log.Warn("destination table has no column versions and the sink's role cannot add them: partial updates "+
					"(unchanged TOASTed columns) are exact only in order; add the column to make them exact in any order",
					"table", d.cfg.Schema+"."+b.Table.Table, "column", colvCol+" jsonb")
			}
		}
		if len(keys) == 0 {
			// A lone truncate names no columns: the stored primary key
			// keys the tombstone table.
			if keys, err = loadPrimaryKey(ctx, tx, target); err != nil {
				return nil, err
			}
		}
	}
	ddl = append(ddl, bookkeepingDDL...)
	for _, q := range ddl {
		if _, err := tx.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("prepare destination table: %w", unindexableKey(err, d.cfg.Schema+"."+b.Table.Table, b.Columns))
		}
	}
	if err := ensureCollectFloor(ctx, tx); err != nil {
		return nil, err
	}
	if s.types, err = loadColumns(ctx, tx, target); err != nil {
		return nil, err
	}
	if s.source, err = markSourceColumns(ctx, tx, target, b.Columns); err != nil {
		return nil, err
	}
	if created {
		d.log.Info("created destination table", "table", d.cfg.Schema+"."+b.Table.Table)
	}
	if len(keys) > 0 {
		keyCols := make([]stageColumn, len(keys))
		for i, k := range keys {
			keyCols[i] = stageColumn{Name: k, Type: s.types[k], Key: true}
		}
		if _, err := tx.Exec(ctx, createTombstoneSQL(s.tomb, keyCols)); err != nil {
			return nil, fmt.Errorf("create tombstone table: %w", err)
		}
		s.hasTomb = true
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+ident(bookkeepingSchema, registryTable)+
		" (schema_name, table_name, tombstone_table) VALUES ($1, $2, $3) ON CONFLICT (schema_name, table_name) DO NOTHING",
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

// loadColumns reads a table's columns and types; none when it is missing.
func loadColumns(ctx context.Context, tx pgx.Tx, target string) (map[string]string, error) {
	rows, err := tx.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, target)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", target, err)
	}
	types := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read columns of %s: %w", target, err)
		}
		types[name] = typ
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", target, err)
	}
	return types, nil
}

// loadPrimaryKey reads a table's primary key columns in key order.
func loadPrimaryKey(ctx context.Context, tx pgx.Tx, target string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = to_regclass($1) AND i.indisprimary
		ORDER BY array_position(i.indkey::int2[], a.attnum)`, target)
	if err != nil {
		return nil, fmt.Errorf("read primary key of %s: %w", target, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read primary key of %s: %w", target, err)
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
	return lsn && seq
}

// hasColv reports whether the table has the column-version record.
func (s *tableShape) hasColv() bool {
	_, ok := s.types[colvCol]
	return ok
}
