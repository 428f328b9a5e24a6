package verify

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// kind says how a column's value is brought to one spelling that reads
// equal from PostgreSQL and DuckDB (docs/verify.md). The SQL side projects
// each value to text the engines agree on or that Go can parse; canon
// finishes the job.
type kind int

const (
	// kText: the value's text output (PostgreSQL's output function; the
	// DuckDB destination holds exactly that text, or a type whose cast
	// to VARCHAR spells it the same: integers, booleans, uuid, json).
	kText kind = iota
	// kBool: bool::text spells true/false, like DuckDB (the output
	// function spells t/f).
	kBool
	// kFloat32, kFloat64: parsed, then printed shortest round-trip, so
	// "1e+20" and "1e20", "NaN" and "nan" meet.
	kFloat32
	kFloat64
	// kDecimal: the same number ("1.50" and "1.5" differ in scale only
	// when the destination is VARCHAR; compared as numbers).
	kDecimal
	// kBytes: lower-case hex.
	kBytes
	// kDate: days since 2000-01-01, or infinity/-infinity.
	kDate
	// kTimestamp: microseconds since 1970 (UTC), or infinity/-infinity.
	kTimestamp
	// kInterval: months, days and microseconds.
	kInterval
)

// kindOf maps a source column's format_type text to its kind.
func kindOf(typ string) kind {
	t := strings.TrimPrefix(typ, "pg_catalog.")
	if i := strings.IndexByte(t, '('); i >= 0 && !strings.HasSuffix(t, "[]") {
		// "numeric(10,2)", "timestamp(3) with time zone": drop the typmod.
		j := strings.IndexByte(t[i:], ')')
		t = strings.TrimSpace(t[:i] + t[i+j+1:])
	}
	switch t {
	case "boolean":
		return kBool
	case "real":
		return kFloat32
	case "double precision":
		return kFloat64
	case "numeric":
		return kDecimal
	case "bytea":
		return kBytes
	case "date":
		return kDate
	case "timestamp without time zone", "timestamp with time zone":
		return kTimestamp
	case "interval":
		return kInterval
	}
	return kText
}

func pgIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// pgProjection is the PostgreSQL expression of column name of kind k.
func pgProjection(name string, k kind) string {
	n := pgIdent(name)
	switch k {
	case kBool:
		return n + "::text"
	case kBytes:
		return "encode(" + n + ", 'hex')"
	case kDate:
		return fmt.Sprintf("CASE WHEN isfinite(%[1]s) THEN (%[1]s - date '2000-01-01')::text ELSE %[1]s::text END", n)
	case kTimestamp:
		return fmt.Sprintf("CASE WHEN isfinite(%[1]s) THEN (extract(epoch FROM %[1]s) * 1000000)::numeric(40,0)::text ELSE %[1]s::text END", n)
	case kInterval:
		return fmt.Sprintf("(extract(year FROM %[1]s) * 12 + extract(month FROM %[1]s))::bigint::text || ' ' || extract(day FROM %[1]s)::bigint::text"+
			" || ' ' || (extract(hour FROM %[1]s) * 3600000000 + extract(minute FROM %[1]s) * 60000000 + extract(microseconds FROM %[1]s))::numeric(30,0)::text", n)
	}
	// The output function, as capture sends it (concat, not ::text: for
	// char(n) ::text drops the padding). num_nulls, not IS NULL: a
	// composite whose fields are all NULL IS NULL but is a value.
	return fmt.Sprintf("CASE WHEN num_nulls(%[1]s) = 1 THEN NULL ELSE concat(%[1]s) END", n)
}

func duckIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// duckProjection is the DuckDB expression of column name of kind k.
func duckProjection(name string, k kind) string {
	n := duckIdent(name)
	switch k {
	case kBytes:
		return "lower(hex(" + n + "))"
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

// canon finishes a projected value's normalisation in Go. nil is NULL.
func canon(k kind, v *string) *string {
	if v == nil {
		return nil
	}
	s := *v
	switch k {
	case kFloat32, kFloat64:
		bits := 64
		if k == kFloat32 {
			bits = 32
		}
		if f, err := strconv.ParseFloat(s, bits); err == nil {
			s = strconv.FormatFloat(f, 'g', -1, bits)
		}
	case kDecimal:
		if r, ok := new(big.Rat).SetString(s); ok {
			s = r.RatString()
		}
	case kBytes:
		s = strings.ToLower(s)
	}
	return &s
}
