package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// tableShape is what the driver knows of a destination table
// (relational.Shape).
type tableShape = relational.Shape

// shape returns the destination table's shape (relational.Ensure), with
// the DDL in PostgreSQL's dialect inside the Apply's transaction.
func (d *Driver) shape(ctx context.Context, tx pgx.Tx, b cdc.TableBatch) (*tableShape, error) {
	tombName := tombstoneTableName(d.cfg.Schema, b.Table.Name)
	t := relational.Table{Schema: d.cfg.Schema, Name: b.Table.Name, Target: ident(d.cfg.Schema, b.Table.Name),
		Tomb: ident(bookkeepingSchema, tombName), TombName: tombName, Required: []string{relational.LSNCol, relational.SeqCol}}
	return relational.Ensure(ctx, d.tables, pgDialect{d: d, tx: tx, t: t, cols: b.Columns}, t, b, d.log)
}

// pgDialect is relational.Dialect for one table in one transaction.
type pgDialect struct {
	d    *Driver
	tx   pgx.Tx
	t    relational.Table
	cols []contracts.Column // the batch's, for messages
}

func (p pgDialect) LockDDL(ctx context.Context) error { return txLockDDL(p.tx)(ctx) }

func (p pgDialect) Columns(ctx context.Context) (map[string]string, error) {
	return loadColumns(ctx, p.tx, p.t.Target)
}

func (p pgDialect) PrimaryKey(ctx context.Context) ([]string, error) {
	return loadPrimaryKey(ctx, p.tx, p.t.Target)
}

func (p pgDialect) CreateTableDDL(cols []contracts.Column) []string {
	return colvSQL{}.syntax().CreateTableDDL(p.t.Schema, p.t.Target, cols)
}

func (p pgDialect) RenameColumns(ctx context.Context, types map[string]string, cols []contracts.Column) ([]string, error) {
	return renameColumns(ctx, p.tx, p.t.Target, types, cols)
}

func (p pgDialect) AddColumnDDL(c contracts.Column, _ map[string]string) ([]string, error) {
	add, err := addColumnDDL(p.t.Target, c)
	if err != nil {
		return nil, sinkrunner.Permanent(fmt.Errorf("add column %q to %s: %w", c.Name, p.t.Target, err))
	}
	return add, nil
}

func (p pgDialect) VersionDDL(ctx context.Context, types map[string]string) ([]string, error) {
	x := colvSQL{}.syntax()
	ddl := x.AddVersions(p.t.Target, types)
	if _, ok := types[relational.ColvCol]; !ok {
		// Tables created before column versions: every row's columns
		// have the row's version. A table the sink's role does not own
		// keeps going without (ownsTable).
		owner, err := ownsTable(ctx, p.tx, p.t.Target)
		if err != nil {
			return nil, err
		}
		if owner {
			ddl = append(ddl, x.AddColv(p.t.Target))
		} else {
			p.d.log.Warn("destination table has no column versions and the sink's role cannot add them: partial updates "+
				"(unchanged TOASTed columns) are exact only in order; add the column to make them exact in any order",
				"table", p.t.Schema+"."+p.t.Name, "column", relational.ColvCol+" jsonb")
		}
	}
	return ddl, nil
}

func (pgDialect) BookkeepingDDL() []string { return colvSQL{}.syntax().BookkeepingDDL() }

func (p pgDialect) ExecDDL(ctx context.Context, q string) error {
	if _, err := p.tx.Exec(ctx, q); err != nil {
		return unindexableKey(err, p.t.Schema+"."+p.t.Name, p.cols)
	}
	return nil
}

func (p pgDialect) MarkSourceColumns(ctx context.Context, cols []contracts.Column) (map[string]bool, error) {
	return markSourceColumns(ctx, p.tx, p.t.Target, cols)
}

// Finish adds the collect floor to a registry from before collection.
func (p pgDialect) Finish(ctx context.Context, _ *tableShape) error {
	return ensureCollectFloor(ctx, p.tx)
}

func (p pgDialect) CreateTombstone(ctx context.Context, s *tableShape, keys []string) error {
	_, err := p.tx.Exec(ctx, colvSQL{}.syntax().CreateTombstoneFor(s.Tomb, keys, s.Types))
	return err
}

func (p pgDialect) Register(ctx context.Context, tombName string) error {
	_, err := p.tx.Exec(ctx, "INSERT INTO "+ident(bookkeepingSchema, relational.RegistryTable)+
		" (schema_name, table_name, tombstone_table) VALUES ($1, $2, $3) ON CONFLICT (schema_name, table_name) DO NOTHING",
		p.t.Schema, p.t.Name, tombName)
	return err
}

// loadColumns reads a table's columns and types; none when it is missing.
func loadColumns(ctx context.Context, tx pgx.Tx, target string) (map[string]string, error) {
	return attributes[string](ctx, tx, target, "format_type(a.atttypid, a.atttypmod)", "columns")
}

// attributes reads expr, over the pg_attribute row a, for every column of
// target, by column name; what names it in errors.
func attributes[T any](ctx context.Context, tx pgx.Tx, target, expr, what string) (map[string]T, error) {
	rows, err := tx.Query(ctx, "SELECT a.attname, "+expr+
		" FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped", target)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", what, target, err)
	}
	defer rows.Close()
	out := map[string]T{}
	for rows.Next() {
		var name string
		var v T
		if err := rows.Scan(&name, &v); err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", what, target, err)
		}
		out[name] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", what, target, err)
	}
	return out, nil
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
