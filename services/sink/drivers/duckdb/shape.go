package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// tableShape is what the driver knows of a destination table
// (relational.Shape).
type tableShape = relational.Shape

// shape returns the destination table's shape (relational.Ensure), with
// the DDL in DuckDB's dialect on the Apply's connection.
func (d *Driver) shape(ctx context.Context, conn *sql.Conn, b cdc.TableBatch) (*tableShape, error) {
	tombName := tombstoneTableName(d.cfg.Schema, b.Table.Name)
	t := relational.Table{Schema: d.cfg.Schema, Name: b.Table.Name, Target: ident(d.cfg.Schema, b.Table.Name),
		Tomb: ident(relational.BookkeepingSchema, tombName), TombName: tombName, Required: []string{relational.LSNCol, relational.SeqCol, relational.ColvCol}}
	return relational.Ensure(ctx, d.tables, &duckDialect{d: d, conn: conn, t: t}, t, b, d.log)
}

// duckDialect is relational.Dialect for one table on one connection.
type duckDialect struct {
	d    *Driver
	conn *sql.Conn
	t    relational.Table
	// fills are the added columns whose existing rows take a value
	// (Finish): DuckDB's ADD COLUMN takes no volatile default.
	fills []contracts.Column
}

// LockDDL does nothing: one driver owns the database file.
func (*duckDialect) LockDDL(context.Context) error { return nil }

func (x *duckDialect) Columns(ctx context.Context) (map[string]string, error) {
	return x.d.loadColumns(ctx, x.conn, x.t.Name)
}

func (x *duckDialect) PrimaryKey(ctx context.Context) ([]string, error) {
	return x.d.loadPrimaryKey(ctx, x.conn, x.t.Name)
}

func (x *duckDialect) CreateTableDDL(cols []contracts.Column) []string {
	return syntax().CreateTableDDL(x.t.Schema, x.t.Target, cols)
}

func (x *duckDialect) RenameColumns(ctx context.Context, types map[string]string, cols []contracts.Column) ([]string, error) {
	return x.d.renameColumns(ctx, x.conn, x.t.Target, x.t.Name, types, cols)
}

func (x *duckDialect) AddColumnDDL(c contracts.Column, types map[string]string) ([]string, error) {
	lower := strings.ToLower(c.Name)
	for name := range types {
		if strings.ToLower(name) == lower {
			return nil, sinkrunner.Permanent(fmt.Errorf("column %q is column %q of the destination table: DuckDB identifiers are case-insensitive", c.Name, name))
		}
	}
	if c.ExistingValue != "" {
		x.fills = append(x.fills, c)
	}
	return []string{syntax().AddColumn(x.t.Target, relational.Column{Name: c.Name, Type: columnType(c.BaseType)})}, nil
}

func (x *duckDialect) VersionDDL(_ context.Context, types map[string]string) ([]string, error) {
	ddl := syntax().AddVersions(x.t.Target, types)
	if _, ok := types[relational.ColvCol]; !ok {
		ddl = append(ddl, syntax().AddColv(x.t.Target))
	}
	return ddl, nil
}

func (*duckDialect) BookkeepingDDL() []string { return bookkeepingDDL() }

func (x *duckDialect) ExecDDL(ctx context.Context, q string) error {
	_, err := x.conn.ExecContext(ctx, q)
	return err
}

func (x *duckDialect) MarkSourceColumns(ctx context.Context, cols []contracts.Column) (map[string]bool, error) {
	return x.d.markSourceColumns(ctx, x.conn, x.t.Target, x.t.Name, cols)
}

// Finish gives existing rows the values of the added columns that have one.
func (x *duckDialect) Finish(ctx context.Context, s *tableShape) error {
	for _, c := range x.fills {
		if err := fillExisting(ctx, x.conn, x.t.Target, x.t.Schema+"."+x.t.Name, c, s.Types[c.Name]); err != nil {
			return err
		}
	}
	return nil
}

func (x *duckDialect) CreateTombstone(ctx context.Context, s *tableShape, keys []string) error {
	_, err := x.conn.ExecContext(ctx, syntax().CreateTombstoneFor(s.Tomb, keys, s.Types))
	return err
}

func (x *duckDialect) Register(ctx context.Context, tombName string) error {
	_, err := x.conn.ExecContext(ctx, "INSERT INTO "+ident(relational.BookkeepingSchema, relational.RegistryTable)+
		" (schema_name, table_name, tombstone_table) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		x.t.Schema, x.t.Name, tombName)
	return err
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
