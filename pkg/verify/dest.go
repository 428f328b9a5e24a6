package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/destquery"
)

// Postgres reads tables back from a PostgreSQL destination.
type Postgres struct {
	Label  string
	Conn   *pgx.Conn
	Schema string // where the destination tables are ("public")
}

var _ Destination = (*Postgres)(nil)

func (d *Postgres) Name() string { return d.Label }
func (d *Postgres) Type() string { return "postgres" }

// Columns implements Destination.
func (d *Postgres) Columns(ctx context.Context, table string) (map[string]bool, bool, error) {
	rows, err := d.Conn.Query(ctx, `SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped`, d.Schema, table)
	if err != nil {
		return nil, false, err
	}
	cols := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, false, err
		}
		cols[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	return cols, len(cols) > 0, nil
}

// Rows implements Destination, in one REPEATABLE READ READ ONLY
// transaction per range.
func (d *Postgres) Rows(ctx context.Context, table string, cols []Col, r Range) ([][]*string, error) {
	p := plan{cols: cols, nkey: keyCount(cols, r)}
	var out [][]*string
	err := pgx.BeginTxFunc(ctx, d.Conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := setSession(ctx, tx); err != nil {
			return err
		}
		var args []any
		rows, err := tx.Query(ctx, pgSelect(p, d.Schema, table, r, &args), args...)
		if err != nil {
			return err
		}
		return pgScan(rows, p, func(_ []string, vals []*string) error {
			out = append(out, vals)
			return nil
		})
	})
	return out, err
}

// keyCount is how many of cols (key columns first) are key columns.
func keyCount(cols []Col, _ Range) int {
	n := 0
	for _, c := range cols {
		if c.Key {
			n++
		}
	}
	return n
}

// setSession pins the settings values' text output depends on, as capture
// does, so that the same value reads the same at the source and at a
// PostgreSQL destination.
func setSession(ctx context.Context, tx pgx.Tx) error {
	for _, s := range []string{"SET LOCAL DateStyle = ISO", "SET LOCAL IntervalStyle = postgres", "SET LOCAL TimeZone = 'UTC'",
		"SET LOCAL extra_float_digits = 1", "SET LOCAL bytea_output = hex", "SET LOCAL lc_monetary = 'C'"} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// DuckDB reads tables back from a DuckDB destination file through the
// process that holds it (pkg/destquery).
type DuckDB struct {
	Label   string
	Path    string
	Schema  string // "main"
	Querier *destquery.Querier
}

var _ Destination = (*DuckDB)(nil)

func (d *DuckDB) Name() string { return d.Label }
func (d *DuckDB) Type() string { return "duckdb" }

func duckString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Columns implements Destination.
func (d *DuckDB) Columns(ctx context.Context, table string) (map[string]bool, bool, error) {
	res, err := d.Querier.Query(ctx, d.Path, destquery.Request{SQL: "SELECT column_name FROM duckdb_columns() WHERE schema_name = " +
		duckString(d.Schema) + " AND table_name = " + duckString(table), Limit: destquery.MaxLimit})
	if errors.Is(err, destquery.ErrNoFile) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	cols := map[string]bool{}
	for _, r := range res.Rows {
		if r[0] != nil {
			cols[*r[0]] = true
		}
	}
	return cols, len(cols) > 0, nil
}

// Rows implements Destination: one query per range, at most
// destquery.MaxLimit rows.
func (d *DuckDB) Rows(ctx context.Context, table string, cols []Col, r Range) ([][]*string, error) {
	nkey := keyCount(cols, r)
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = duckProjection(c.Name, c.kind)
	}
	where := rangeWhere(nkey, r, func(i int) string { return duckIdent(cols[i].Name) }, func(_ int, v string) string { return duckString(v) })
	sql := "SELECT " + strings.Join(exprs, ", ") + " FROM " + duckIdent(d.Schema) + "." + duckIdent(table) + where
	res, err := d.Querier.Query(ctx, d.Path, destquery.Request{SQL: sql, Limit: destquery.MaxLimit, Timeout: destquery.MaxTimeout})
	if err != nil {
		return nil, err
	}
	if res.Truncated {
		return nil, fmt.Errorf("more than %d destination rows in one key range (make the range smaller with a smaller chunk size)", destquery.MaxLimit)
	}
	return res.Rows, nil
}
