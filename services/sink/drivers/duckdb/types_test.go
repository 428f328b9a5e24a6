package duckdb

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

func TestColumnType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"smallint":                       "SMALLINT",
		"integer":                        "INTEGER",
		"bigint":                         "BIGINT",
		"real":                           "FLOAT",
		"double precision":               "DOUBLE",
		"boolean":                        "BOOLEAN",
		"bytea":                          "BLOB",
		"date":                           "DATE",
		"uuid":                           "UUID",
		"json":                           "JSON",
		"jsonb":                          "JSON",
		"numeric":                        "VARCHAR",
		"numeric(10,2)":                  "DECIMAL(10,2)",
		"numeric(38,0)":                  "DECIMAL(38,0)",
		"numeric(38,38)":                 "DECIMAL(38,38)",
		"numeric(39,2)":                  "VARCHAR",
		"numeric(1000,20)":               "VARCHAR",
		"numeric(5,-2)":                  "VARCHAR",
		"numeric(3,5)":                   "VARCHAR",
		"numeric(10,2)[]":                "VARCHAR",
		"timestamp without time zone":    "TIMESTAMP",
		"timestamp(3) without time zone": "TIMESTAMP",
		"timestamp with time zone":       "TIMESTAMP WITH TIME ZONE",
		"timestamp(0) with time zone":    "TIMESTAMP WITH TIME ZONE",
		"time without time zone":         "TIME",
		"time(6) without time zone":      "TIME",
		"time with time zone":            "TIME WITH TIME ZONE",
		"interval":                       "INTERVAL",
		"interval(3)":                    "INTERVAL",
		"interval year to month":         "INTERVAL",
		"interval day to second(3)":      "INTERVAL",
		"text":                           "VARCHAR",
		"character varying(20)":          "VARCHAR",
		"character(3)":                   "VARCHAR",
		`"char"`:                         "VARCHAR",
		"name":                           "VARCHAR",
		"text[]":                         "VARCHAR",
		"integer[]":                      "VARCHAR",
		"int4range":                      "VARCHAR",
		"point":                          "VARCHAR",
		"inet":                           "VARCHAR",
		"bit varying(5)":                 "VARCHAR",
		"tsvector":                       "VARCHAR",
		"money":                          "VARCHAR",
		"xml":                            "VARCHAR",
		"public.mood":                    "VARCHAR",
		"":                               "VARCHAR",
		"int); DROP TABLE x; --":         "VARCHAR",
	} {
		if got := columnType(in); got != want {
			t.Errorf("columnType(%q) = %q, want %q", in, got, want)
		}
		if _, err := converterFor(columnType(in)); err != nil {
			t.Errorf("converterFor(columnType(%q)): %v", in, err)
		}
	}
}

func TestConverterForUnsafeType(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{`STRUCT(a INTEGER, "b c" VARCHAR)`, "INTEGER; DROP TABLE x", "mood"} {
		if _, err := converterFor(typ); err == nil {
			t.Errorf("converterFor(%q) accepted a type that is not safe in SQL", typ)
		}
	}
	for _, typ := range []string{"HUGEINT", "VARCHAR[]", "TIMESTAMP_NS", "BIT"} {
		c, err := converterFor(typ)
		if err != nil || c.wire != duckdb.TYPE_VARCHAR {
			t.Errorf("converterFor(%q) = %v, %v; want text cast by DuckDB", typ, c.wire, err)
		}
	}
}

func TestConvert(t *testing.T) {
	t.Parallel()
	type tc struct {
		typ, in string
		want    any // nil: conversion must fail
	}
	tests := []tc{
		{"SMALLINT", "-32768", int64(-32768)},
		{"SMALLINT", "32768", nil},
		{"INTEGER", "2147483647", int64(math.MaxInt32)},
		{"INTEGER", "2147483648", nil},
		{"BIGINT", "-9223372036854775808", int64(math.MinInt64)},
		{"BIGINT", "9223372036854775808", nil},
		{"BIGINT", "1.5", nil},
		{"FLOAT", "3.4028235e+38", float32(math.MaxFloat32)},
		{"FLOAT", "1.1", float32(1.1)},
		{"FLOAT", "NaN", "NaN32"},
		{"FLOAT", "-Infinity", float32(math.Inf(-1))},
		{"FLOAT", "1e39", nil},
		{"DOUBLE", "0.1", 0.1},
		{"DOUBLE", "1.7976931348623157e+308", math.MaxFloat64},
		{"DOUBLE", "5e-324", 5e-324},
		{"DOUBLE", "Infinity", math.Inf(1)},
		{"DOUBLE", "NaN", "NaN64"},
		{"DOUBLE", "-0", math.Copysign(0, -1)},
		{"DOUBLE", "abc", nil},
		{"DOUBLE", "1e+300", 1e300},
		{"DOUBLE", "-1.5E-10", -1.5e-10},
		{"DOUBLE", "0.10", 0.1},
		{"DOUBLE", "Infinity", math.Inf(1)},
		{"DOUBLE", "-Infinity", math.Inf(-1)},
		// Numeric text with more digits than a double holds, e.g. after the
		// source column became numeric: ParseFloat would round it.
		{"DOUBLE", "0.30000000000000001", nil},
		{"DOUBLE", "12345678901234567890", nil},
		// A double in a FLOAT column (the source went from real to double).
		{"FLOAT", "0.1", float32(0.1)},
		{"FLOAT", "0.30000001", nil},
		{"FLOAT", "16777217", nil},
		{"FLOAT", "-0", float32(math.Copysign(0, -1))},
		{"FLOAT", "Infinity", float32(math.Inf(1))},
		{"BOOLEAN", "true", true},
		{"BOOLEAN", "f", false},
		{"BOOLEAN", "yes", nil},
		{"BLOB", `\xdeadBEEF00`, []byte{0xde, 0xad, 0xbe, 0xef, 0}},
		{"BLOB", `\x`, []byte{}},
		{"BLOB", `\xabc`, nil},
		{"BLOB", `abc\000`, nil},
		{"VARCHAR", "tab\there \\N", "tab\there \\N"},
		{"VARCHAR", "bad \xff", nil},
		{"JSON", `{"a":  [1, 2.50]}`, `{"a":  [1, 2.50]}`},
		{"UUID", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"UUID", "a0eebc999c0b4ef8bb6d6bb9bd380a11", nil},
		{"DECIMAL(10,2)", "12345678.90", "12345678.90"},
		{"DECIMAL(10,2)", "-0.50", "-0.50"},
		{"DECIMAL(10,2)", "7", "7.00"},
		{"DECIMAL(10,2)", "1.2300", "1.23"},
		{"DECIMAL(10,2)", "1.234", nil},
		{"DECIMAL(10,2)", "123456789.00", nil},
		{"DECIMAL(10,2)", "00012345678.90", "12345678.90"},
		{"DECIMAL(10,2)", "NaN", nil},
		{"DECIMAL(10,2)", "Infinity", nil},
		{"DECIMAL(10,2)", "1e5", nil},
		{"DECIMAL(38,0)", "99999999999999999999999999999999999999", "99999999999999999999999999999999999999"},
		{"DECIMAL(38,38)", "-0.00000000000000000000000000000000000001", "-0.00000000000000000000000000000000000001"},
		{"DATE", "2024-02-29", "2024-02-29"},
		{"DATE", "2023-02-29", nil},
		{"DATE", "0044-03-15 BC", "-0043-03-15"},
		{"DATE", "0001-01-01 BC", "0000-01-01"},
		{"DATE", "4713-11-24 BC", "-4712-11-24"},
		{"DATE", "5874897-12-31", "5874897-12-31"},
		{"DATE", "infinity", "infinity"},
		{"DATE", "-infinity", "-infinity"},
		{"DATE", "01/02/2024", nil},
		{"TIMESTAMP", "2024-01-02 03:04:05.123456", "2024-01-02 03:04:05.123456"},
		{"TIMESTAMP", "2024-01-02 03:04:05.5", "2024-01-02 03:04:05.500000"},
		{"TIMESTAMP", "2024-01-02 03:04:05", "2024-01-02 03:04:05.000000"},
		{"TIMESTAMP", "2024-01-02T03:04:05", "2024-01-02 03:04:05.000000"},
		{"TIMESTAMP", "0044-03-15 10:00:00 BC", "-0043-03-15 10:00:00.000000"},
		{"TIMESTAMP", "4714-11-24 00:00:00 BC", "-4713-11-24 00:00:00.000000"},
		{"TIMESTAMP", "294247-01-10 04:00:54.775806", "294247-01-10 04:00:54.775806"},
		{"TIMESTAMP", "294247-01-10 04:00:54.775807", nil},
		{"TIMESTAMP", "294276-12-31 23:59:59.999999", nil},
		{"TIMESTAMP", "infinity", "infinity"},
		{"TIMESTAMP", "-infinity", "-infinity"},
		{"TIMESTAMP", "2024-01-02 03:04:05+00", nil},
		{"TIMESTAMP", "2024-01-02 24:00:00", nil},
		{"TIMESTAMP WITH TIME ZONE", "2024-01-02 03:04:05.123456+00", "2024-01-02 03:04:05.123456+00"},
		{"TIMESTAMP WITH TIME ZONE", "2024-01-02 03:04:05+05:30", "2024-01-01 21:34:05.000000+00"},
		{"TIMESTAMP WITH TIME ZONE", "1900-01-01 00:00:00+00:53:28", "1899-12-31 23:06:32.000000+00"},
		{"TIMESTAMP WITH TIME ZONE", "2024-01-01 23:00:00-03", "2024-01-02 02:00:00.000000+00"},
		{"TIMESTAMP WITH TIME ZONE", "0044-03-15 10:00:00+00 BC", "-0043-03-15 10:00:00.000000+00"},
		{"TIMESTAMP WITH TIME ZONE", "294247-01-10 04:00:54.775806+00", "294247-01-10 04:00:54.775806+00"},
		{"TIMESTAMP WITH TIME ZONE", "294247-01-10 05:00:54.775806+01", "294247-01-10 04:00:54.775806+00"},
		{"TIMESTAMP WITH TIME ZONE", "294247-01-10 04:00:54.775806-01", nil},
		{"TIMESTAMP WITH TIME ZONE", "infinity", "infinity"},
		{"TIMESTAMP WITH TIME ZONE", "2024-01-02 03:04:05", nil},
		{"TIMESTAMP WITH TIME ZONE", "2024-01-02 03:04:05+16", nil},
		{"TIME", "03:04:05.123456", "03:04:05.123456"},
		{"TIME", "24:00:00", "24:00:00.000000"},
		{"TIME", "24:00:00.000001", nil},
		{"TIME", "03:04:05+00", nil},
		{"TIME WITH TIME ZONE", "03:04:05.5+05:30", "03:04:05.500000+05:30:00"},
		{"TIME WITH TIME ZONE", "03:04:05-15:59:59", "03:04:05.000000-15:59:59"},
		{"TIME WITH TIME ZONE", "03:04:05", nil},
		{"INTERVAL", "1 year 2 mons 3 days 04:05:06.789", duckdb.Interval{Months: 14, Days: 3, Micros: 14706789000}},
		{"INTERVAL", "-1 years -2 mons +3 days -04:05:06", duckdb.Interval{Months: -14, Days: 3, Micros: -14706000000}},
		{"INTERVAL", "00:00:00", duckdb.Interval{}},
		{"INTERVAL", "1 day", duckdb.Interval{Days: 1}},
		{"INTERVAL", "-1 days +02:03:00", duckdb.Interval{Days: -1, Micros: 7380000000}},
		{"INTERVAL", "178956970 years 7 mons 2147483647 days 2562047788:00:54.775807",
			duckdb.Interval{Months: math.MaxInt32, Days: math.MaxInt32, Micros: math.MaxInt64}},
		{"INTERVAL", "-178956970 years -8 mons -2147483648 days -2562047788:00:54.775808",
			duckdb.Interval{Months: math.MinInt32, Days: math.MinInt32, Micros: math.MinInt64}},
		{"INTERVAL", "2562047788:00:54.775808", nil},
		{"INTERVAL", "178956970 years 8 mons", nil},
		{"INTERVAL", "infinity", nil},
		{"INTERVAL", "@ 1 year", nil},
		{"INTERVAL", "1-2", nil},
		{"INTERVAL", "P1Y", nil},
		{"INTERVAL", "1 hour", nil},
		{"HUGEINT", "170141183460469231731687303715884105727", "170141183460469231731687303715884105727"},
	}
	for _, tt := range tests {
		c, err := converterFor(tt.typ)
		if err != nil {
			t.Fatalf("converterFor(%q): %v", tt.typ, err)
		}
		got, err := c.convert(tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("%s %q: converted to %#v, want an error", tt.typ, tt.in, got)
			} else if !errors.Is(err, errNotExact) {
				t.Errorf("%s %q: error %v does not wrap errNotExact", tt.typ, tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tt.typ, tt.in, err)
			continue
		}
		switch tt.want {
		case "NaN32":
			if f, ok := got.(float32); !ok || !math.IsNaN(float64(f)) {
				t.Errorf("%s %q = %#v, want float32 NaN", tt.typ, tt.in, got)
			}
			continue
		case "NaN64":
			if f, ok := got.(float64); !ok || !math.IsNaN(f) {
				t.Errorf("%s %q = %#v, want float64 NaN", tt.typ, tt.in, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, tt.want) || (tt.typ == "DOUBLE" && math.Signbit(got.(float64)) != math.Signbit(tt.want.(float64))) {
			t.Errorf("%s %q = %#v, want %#v", tt.typ, tt.in, got, tt.want)
		}
	}
}

func TestBuildStatementsQuotesIdentifiers(t *testing.T) {
	t.Parallel()
	cols := []stageColumn{
		{Name: `id"); DROP TABLE x; --`, Type: "INTEGER", Key: true, conv: converter{wire: duckdb.TYPE_INTEGER}},
		{Name: "big", Type: "VARCHAR", Keep: true, conv: converter{wire: duckdb.TYPE_VARCHAR}},
		{Name: "at", Type: "TIMESTAMP", conv: converter{wire: duckdb.TYPE_VARCHAR}},
	}
	st := buildStatements(ident("s", "t"), ident("_rosetta", "tomb"), "stage", newLayout(cols))
	if !strings.Contains(st.createStage, `"id""); DROP TABLE x; --" INTEGER`) {
		t.Errorf("key column not quoted: %s", st.createStage)
	}
	if !strings.Contains(st.load, `CAST("_rosetta_rows"."w3" AS TIMESTAMP)`) || strings.Contains(st.load, `CAST("_rosetta_rows"."w1"`) {
		t.Errorf("load casts only columns whose wire type differs: %s", st.load)
	}
	if !strings.Contains(st.Update, `"big" = CASE WHEN s."_rosetta_colv" IS NULL AND (t."_rosetta_lsn", t."_rosetta_seq") < (s."_rosetta_lsn", s."_rosetta_seq") THEN s."big" WHEN COALESCE(t."_rosetta_colv"['big'], [t."_rosetta_lsn", t."_rosetta_seq"]) < COALESCE(s."_rosetta_colv"['big'], [s."_rosetta_lsn", s."_rosetta_seq"]) THEN s."big" ELSE t."big" END`) {
		t.Errorf("update does not merge per column version: %s", st.Update)
	}
	if !strings.Contains(st.fill, `"big" = CASE WHEN s."_rosetta_keep_2" THEN t."big" ELSE s."big" END`) {
		t.Errorf("fill does not take flagged columns from the old key's row: %s", st.fill)
	}
	if st.fill == "" {
		t.Error("no fill statement for a column with keep flags")
	}
}
