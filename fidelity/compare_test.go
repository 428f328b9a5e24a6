package fidelity

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// kind says how a column's DuckDB value is compared with the source. Each
// follows docs/duckdb.md: either the exact value, or PostgreSQL's text.
type kind int

const (
	// kText: the DuckDB value cast to VARCHAR equals the value's text
	// output, which is what capture sends (VARCHAR holders, JSON, UUID,
	// integers). Not ::text: for char(n) it drops the padding, for inet
	// it adds a /32, for xml it keeps a declaration the output omits.
	kText kind = iota
	// kBool: DuckDB spells booleans true/false, like bool::text.
	kBool
	// kFloat32, kFloat64: the same IEEE bits (NaN equals NaN, -0 is not 0).
	kFloat32
	kFloat64
	// kDecimal: the same number (DuckDB spells DECIMAL(38,38) as "-.01…").
	kDecimal
	// kBytes: the same bytes.
	kBytes
	// kDate: the same day (days since 2000-01-01), or the same infinity.
	kDate
	// kTimestamp: the same microsecond since 1970, or the same infinity.
	kTimestamp
	// kInterval: the same months, days and microseconds.
	kInterval
)

// column is one column of a checked table.
type column struct {
	name string
	typ  string // source DDL type
	// pgType is the column's type at the PostgreSQL destination as
	// format_type prints it (docs/types.md); empty means typ.
	pgType string
	// duckType is the DuckDB column type docs/duckdb.md promises.
	duckType string
	kind     kind
	// vals are SQL literals, one per row of the types table; rows beyond
	// the list get NULL.
	vals []string
}

// table is a checked table; its first column is its integer key.
type table struct {
	name string
	cols []column
}

func q(name string) string { return pgx.Identifier{name}.Sanitize() }

// pgProjection is the source-side expression a DuckDB value is compared with.
func pgProjection(c column) string {
	n := q(c.name)
	switch c.kind {
	case kBool:
		return n + "::text"
	case kDate:
		return fmt.Sprintf("CASE WHEN isfinite(%[1]s) THEN (%[1]s - date '2000-01-01')::text ELSE %[1]s::text END", n)
	case kTimestamp:
		return fmt.Sprintf("CASE WHEN isfinite(%[1]s) THEN (extract(epoch FROM %[1]s) * 1000000)::numeric(40,0)::text ELSE %[1]s::text END", n)
	case kInterval:
		return fmt.Sprintf("(extract(year FROM %[1]s) * 12 + extract(month FROM %[1]s))::bigint::text || ' ' || extract(day FROM %[1]s)::bigint::text"+
			" || ' ' || (extract(hour FROM %[1]s) * 3600000000 + extract(minute FROM %[1]s) * 60000000 + extract(microseconds FROM %[1]s))::numeric(30,0)::text", n)
	}
	// num_nulls, not IS NULL: a composite whose fields are all NULL
	// IS NULL but is a value.
	return fmt.Sprintf("CASE WHEN num_nulls(%[1]s) = 1 THEN NULL ELSE concat(%[1]s) END", n)
}

// duckProjection is the DuckDB-side expression.
func duckProjection(c column) string {
	n := q(c.name)
	switch c.kind {
	case kFloat32, kFloat64, kBytes:
		return n
	case kDate:
		return fmt.Sprintf("CASE WHEN isfinite(%[1]s) THEN CAST(%[1]s - DATE '2000-01-01' AS VARCHAR) ELSE CAST(%[1]s AS VARCHAR) END", n)
	case kTimestamp:
		return fmt.Sprintf("CASE WHEN isfinite(%[1]s) THEN CAST(epoch_us(%[1]s) AS VARCHAR) ELSE CAST(%[1]s AS VARCHAR) END", n)
	case kInterval:
		return fmt.Sprintf("CAST(datepart('year', %[1]s) * 12 + datepart('month', %[1]s) AS VARCHAR) || ' ' || CAST(datepart('day', %[1]s) AS VARCHAR)"+
			" || ' ' || CAST(CAST(datepart('hour', %[1]s) AS HUGEINT) * 3600000000 + CAST(datepart('minute', %[1]s) AS HUGEINT) * 60000000"+
			" + datepart('microseconds', %[1]s) AS VARCHAR)", n)
	}
	return "CAST(" + n + " AS VARCHAR)"
}

// pgRows reads exprs of every row of t ordered by key, as text.
func pgRows(ctx context.Context, conn *pgx.Conn, t table, exprs []string) ([][]*string, error) {
	sqlText := "SELECT " + strings.Join(exprs, ", ") + " FROM " + q(t.name) + " ORDER BY " + q(t.cols[0].name)
	rows, err := conn.Query(ctx, sqlText)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.name, err)
	}
	defer rows.Close()
	var out [][]*string
	for rows.Next() {
		row := make([]*string, len(exprs))
		ptrs := make([]any, len(exprs))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("read %s: %w", t.name, err)
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// checksum is an ordered md5 over every column's ::text of t.
func checksum(ctx context.Context, conn *pgx.Conn, t table) (string, error) {
	parts := make([]string, len(t.cols))
	for i, c := range t.cols {
		parts[i] = "coalesce(" + q(c.name) + "::text, '<NULL>')"
	}
	var sum *string
	err := conn.QueryRow(ctx, "SELECT md5(string_agg(concat_ws('|', "+strings.Join(parts, ", ")+"), E'\\n' ORDER BY "+
		q(t.cols[0].name)+")) FROM "+q(t.name)).Scan(&sum)
	if err != nil {
		return "", fmt.Errorf("checksum %s: %w", t.name, err)
	}
	if sum == nil {
		return "<empty>", nil
	}
	return *sum, nil
}

func show(v *string) string {
	if v == nil {
		return "NULL"
	}
	return strconv.Quote(clip(*v, 200))
}

// diffPostgres compares t at the source and the PostgreSQL destination:
// every column's ::text, row by row, the ordered checksum, and the
// destination column types. It returns "" when they are equal.
func diffPostgres(ctx context.Context, src, dst *pgx.Conn, t table) string {
	exprs := make([]string, len(t.cols))
	for i, c := range t.cols {
		exprs[i] = q(c.name) + "::text"
	}
	want, err := pgRows(ctx, src, t, exprs)
	if err != nil {
		return "source: " + err.Error()
	}
	got, err := pgRows(ctx, dst, t, exprs)
	if err != nil {
		return "postgres destination: " + err.Error()
	}
	if d := diffRows(t, want, anyRows(got), func(i int, w *string, g any) bool {
		gs, _ := g.(*string)
		return (w == nil) == (gs == nil) && (w == nil || *w == *gs)
	}); d != "" {
		return "postgres destination: " + d
	}
	ws, err := checksum(ctx, src, t)
	if err != nil {
		return err.Error()
	}
	gs, err := checksum(ctx, dst, t)
	if err != nil {
		return err.Error()
	}
	if ws != gs {
		return fmt.Sprintf("postgres destination: %s checksum %s, source %s", t.name, gs, ws)
	}
	return ""
}

// diffRows compares rows keyed by their first value.
func diffRows(t table, want [][]*string, got [][]any, eq func(col int, w *string, g any) bool) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%s: %d rows, source has %d", t.name, len(got), len(want))
	}
	for r := range want {
		for i, c := range t.cols {
			if !eq(i, want[r][i], got[r][i]) {
				return fmt.Sprintf("%s row %s column %s (%s): got %s, source %s", t.name, show(want[r][0]), c.name, c.typ,
					showAny(got[r][i]), show(want[r][i]))
			}
		}
	}
	return ""
}

func showAny(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case *string:
		return show(v)
	case string:
		return strconv.Quote(clip(v, 200))
	case []byte:
		return `\x` + clip(hex.EncodeToString(v), 200)
	}
	return fmt.Sprintf("%T %v", v, v)
}

// pgRows returns [][]*string; diffRows wants [][]any.
func anyRows(rows [][]*string) [][]any {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = make([]any, len(r))
		for j, v := range r {
			out[i][j] = v
		}
	}
	return out
}

// duckEqual compares one DuckDB value with the source's projection.
func duckEqual(c column, w *string, g any) bool {
	if w == nil || g == nil {
		return w == nil && g == nil
	}
	switch c.kind {
	case kFloat32:
		f, ok := g.(float32)
		want, err := strconv.ParseFloat(*w, 32)
		if !ok || err != nil {
			return false
		}
		if math.IsNaN(want) {
			return f != f
		}
		return math.Float32bits(f) == math.Float32bits(float32(want))
	case kFloat64:
		f, ok := g.(float64)
		want, err := strconv.ParseFloat(*w, 64)
		if !ok || err != nil {
			return false
		}
		if math.IsNaN(want) {
			return math.IsNaN(f)
		}
		return math.Float64bits(f) == math.Float64bits(want)
	case kDecimal:
		s, ok := g.(string)
		gr, gok := new(big.Rat).SetString(s)
		wr, wok := new(big.Rat).SetString(*w)
		return ok && gok && wok && gr.Cmp(wr) == 0
	case kBytes:
		b, ok := g.([]byte)
		want, err := hex.DecodeString(strings.TrimPrefix(*w, `\x`))
		return ok && err == nil && string(b) == string(want)
	case kText:
		// Compared as text below, as is every kind without a case.
	}
	s, ok := g.(string)
	return ok && s == *w
}

// diffDuck compares t at the source with the DuckDB file: every value as
// docs/duckdb.md promises, and the column types.
func diffDuck(ctx context.Context, src *pgx.Conn, path string, t table) string {
	pgExprs := make([]string, len(t.cols))
	duckExprs := make([]string, len(t.cols))
	for i, c := range t.cols {
		pgExprs[i] = pgProjection(c)
		duckExprs[i] = duckProjection(c)
	}
	want, err := pgRows(ctx, src, t, pgExprs)
	if err != nil {
		return "source: " + err.Error()
	}
	var got [][]any
	types := map[string]string{}
	err = duckQuery(ctx, path, func(db *sql.DB) error {
		got = nil
		trows, err := db.QueryContext(ctx, "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ?", t.name)
		if err != nil {
			return fmt.Errorf("read column types of %s: %w", t.name, err)
		}
		for trows.Next() {
			var n, ty string
			if err := trows.Scan(&n, &ty); err != nil {
				trows.Close()
				return fmt.Errorf("read column types of %s: %w", t.name, err)
			}
			types[n] = ty
		}
		trows.Close()
		if len(types) == 0 {
			return nil // not created yet
		}
		rows, err := db.QueryContext(ctx, "SELECT "+strings.Join(duckExprs, ", ")+" FROM main."+q(t.name)+" ORDER BY "+q(t.cols[0].name))
		if err != nil {
			return fmt.Errorf("read %s: %w", t.name, err)
		}
		defer rows.Close()
		for rows.Next() {
			row := make([]any, len(duckExprs))
			ptrs := make([]any, len(row))
			for i := range row {
				ptrs[i] = &row[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return fmt.Errorf("read %s: %w", t.name, err)
			}
			got = append(got, row)
		}
		return rows.Err()
	})
	if err != nil {
		return "duckdb: " + err.Error()
	}
	if len(types) == 0 {
		return "duckdb: table " + t.name + " not created yet"
	}
	if d := diffRows(t, want, got, func(i int, w *string, g any) bool { return duckEqual(t.cols[i], w, g) }); d != "" {
		return "duckdb: " + d
	}
	for _, c := range t.cols {
		if c.duckType != "" && types[c.name] != c.duckType {
			return fmt.Sprintf("duckdb: %s column %s (%s) has type %s, want %s", t.name, c.name, c.typ, types[c.name], c.duckType)
		}
	}
	return ""
}

// pgTypes checks the PostgreSQL destination's column types.
func diffPgTypes(ctx context.Context, dst *pgx.Conn, t table) string {
	rows, err := dst.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, q(t.name))
	if err != nil {
		return fmt.Sprintf("postgres destination: column types of %s: %v", t.name, err)
	}
	types := map[string]string{}
	for rows.Next() {
		var n, ty string
		if err := rows.Scan(&n, &ty); err != nil {
			rows.Close()
			return fmt.Sprintf("postgres destination: column types of %s: %v", t.name, err)
		}
		types[n] = ty
	}
	rows.Close()
	for _, c := range t.cols {
		want := c.pgType
		if want == "" {
			want = c.typ
		}
		if types[c.name] != want {
			return fmt.Sprintf("postgres destination: %s column %s (%s) has type %q, want %q", t.name, c.name, c.typ, types[c.name], want)
		}
	}
	return ""
}

// waitEqual waits until every table is equal at both destinations, and
// fails with the first difference otherwise.
func (e *env) waitEqual(timeout time.Duration, duckPath string, tables ...table) {
	e.t.Helper()
	src := e.connect(e.sourceDB)
	dst := e.connect(e.destDB)
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		diff := ""
		for _, t := range tables {
			if diff = diffPostgres(ctx, src, dst, t); diff != "" {
				break
			}
			if diff = diffPgTypes(ctx, dst, t); diff != "" {
				break
			}
			if diff = diffDuck(ctx, src, duckPath, t); diff != "" {
				break
			}
		}
		cancel()
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("destinations did not equal the source within %s: %s", timeout, diff)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
