package fidelity

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	bigNumber   = strings.Repeat("9", 1000)
	tinyNumber  = "0." + strings.Repeat("0", 998) + "1"
	mixedNumber = "-" + strings.Repeat("1234567890", 60) + "." + strings.Repeat("0987654321", 40)
)

// typeColumns is one column per built-in type (and enums, domains,
// composites), each with edge-case values. Every literal is cast, so the
// list also documents what was inserted.
func typeColumns() []column {
	lit := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	return []column{
		{name: "c_int2", typ: "smallint", duckType: "SMALLINT", vals: []string{"-32768", "32767", "0"}},
		{name: "c_int4", typ: "integer", duckType: "INTEGER", vals: []string{"-2147483648", "2147483647", "0"}},
		{name: "c_int8", typ: "bigint", duckType: "BIGINT", vals: []string{"-9223372036854775808", "9223372036854775807", "0"}},
		{name: "c_numeric", typ: "numeric", duckType: "VARCHAR", vals: []string{"'NaN'", "'Infinity'", "'-Infinity'",
			lit(bigNumber), lit(tinyNumber), lit(mixedNumber), "'-123.4500'"}},
		{name: "c_numeric_10_2", typ: "numeric(10,2)", duckType: "DECIMAL(10,2)", kind: kDecimal, vals: []string{"'99999999.99'", "'-99999999.99'", "'-0.01'", "0", "'1.5'"}},
		{name: "c_numeric_38_38", typ: "numeric(38,38)", duckType: "DECIMAL(38,38)", kind: kDecimal, vals: []string{"'0." + strings.Repeat("9", 38) + "'", "'-0." + strings.Repeat("0", 37) + "1'"}},
		{name: "c_numeric_50_5", typ: "numeric(50,5)", duckType: "VARCHAR", vals: []string{"'" + strings.Repeat("9", 45) + ".99999'", "'NaN'"}},
		{name: "c_numeric_neg_scale", typ: "numeric(3,-2)", duckType: "VARCHAR", vals: []string{"'99900'", "'-1200'", "0"}},
		{name: "c_numeric_scale_gt_p", typ: "numeric(2,5)", duckType: "VARCHAR", vals: []string{"'0.00099'", "'-0.00001'"}},
		{name: "c_real", typ: "real", duckType: "FLOAT", kind: kFloat32, vals: []string{"'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "'3.4028235e+38'", "'1e-45'", "'0.1'"}},
		{name: "c_double", typ: "double precision", duckType: "DOUBLE", kind: kFloat64, vals: []string{"'NaN'", "'Infinity'", "'-Infinity'", "'-0'",
			"'1.7976931348623157e+308'", "'5e-324'", "'0.1'"}},
		{name: "c_money", typ: "money", duckType: "VARCHAR", vals: []string{"'-92233720368547758.08'", "'92233720368547758.07'", "0"}},
		{name: "c_text", typ: "text", duckType: "VARCHAR", vals: []string{"''", `E'tab\there\nnewline\r\\back\\slash "quote" ''apos'''`,
			"'héllo 世界 🎉 \u200b'", lit(strings.Repeat("long text ", 20000)), `'\N'`, "'NULL'"}},
		{name: "c_varchar", typ: "character varying(5)", duckType: "VARCHAR", vals: []string{"'abcde'", "''", "'é世🎉'"}},
		{name: "c_char", typ: "character(5)", duckType: "VARCHAR", vals: []string{"'ab'", "''", "'abcde'", "'é'"}},
		{name: "c_qchar", typ: `"char"`, duckType: "VARCHAR", vals: []string{"'a'", `''`, `E'\\377'`, `'\'`}},
		{name: "c_name", typ: "name", duckType: "VARCHAR", vals: []string{"'pg_class'", lit(strings.Repeat("n", 63))}},
		{name: "c_bytea", typ: "bytea", duckType: "BLOB", kind: kBytes, vals: []string{`'\x'`, `'\x00'`, `'\x00ff0010'`, `'abc'`, `'\x5c78'`}},
		{name: "c_bool", typ: "boolean", duckType: "BOOLEAN", kind: kBool, vals: []string{"true", "false"}},
		{name: "c_date", typ: "date", duckType: "DATE", kind: kDate, vals: []string{"'infinity'", "'-infinity'", "'4713-01-01 BC'", "'5874897-12-31'",
			"'2024-02-29'", "'0001-01-01 BC'", "'0001-01-01'"}},
		{name: "c_time", typ: "time without time zone", duckType: "TIME", vals: []string{"'00:00:00'", "'24:00:00'", "'23:59:59.999999'", "'12:34:56.5'"}},
		{name: "c_time3", typ: "time(3) without time zone", duckType: "TIME", vals: []string{"'12:34:56.789'", "'01:02:03'"}},
		{name: "c_timetz", typ: "time with time zone", duckType: "TIME WITH TIME ZONE", vals: []string{"'00:00:00+15:59'", "'24:00:00-15:59'",
			"'12:34:56.789012+05:30'", "'01:02:03+00'", "'12:00:00+00:53:28'"}},
		{name: "c_ts", typ: "timestamp without time zone", duckType: "TIMESTAMP", kind: kTimestamp, vals: []string{"'infinity'", "'-infinity'",
			"'4713-01-01 00:00:00 BC'", "'2024-01-02 03:04:05.123456'", "'294246-12-31 23:59:59.999999'", "'1970-01-01 00:00:00'", "'0001-12-31 23:59:59.5 BC'"}},
		{name: "c_ts0", typ: "timestamp(0) without time zone", duckType: "TIMESTAMP", kind: kTimestamp, vals: []string{"'2024-01-02 03:04:05'"}},
		{name: "c_tstz", typ: "timestamp with time zone", duckType: "TIMESTAMP WITH TIME ZONE", kind: kTimestamp, vals: []string{"'infinity'", "'-infinity'",
			"'2024-01-02 03:04:05.123456+05:30'", "'1900-01-01 00:00:00+00'", "'4713-01-01 00:00:00+00 BC'", "'1850-06-01 12:00:00 Europe/Amsterdam'",
			"'2038-01-19 03:14:08.000001-09:30'"}},
		{name: "c_interval", typ: "interval", duckType: "INTERVAL", kind: kInterval, vals: []string{"'0'", "'178000000 years'", "'-178000000 years'",
			"'1 year 2 mons -3 days +04:05:06.789'", "'-2147483648 days'", "'2562047788:00:54.775807'", "'-1 mons +1 day -00:00:00.000001'"}},
		{name: "c_interval_ym", typ: "interval year to month", duckType: "INTERVAL", kind: kInterval, vals: []string{"'3 years 4 months'"}},
		{name: "c_interval_ds", typ: "interval day to second(3)", duckType: "INTERVAL", kind: kInterval, vals: []string{"'1 day 00:00:01.123'"}},
		{name: "c_uuid", typ: "uuid", duckType: "UUID", vals: []string{"'00000000-0000-0000-0000-000000000000'", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
			"'ffffffff-ffff-ffff-ffff-ffffffffffff'"}},
		{name: "c_json", typ: "json", duckType: "JSON", vals: []string{`'{"b": 1,  "a": [1, 2.50, null, 1e400], "a": "dup", "u": "\u00e9 é 🎉"}'`,
			"'[]'", `'"str"'`, "'null'", `'  {"deep": [[[[[[{"x": [true]}]]]]]]}  '`,
			lit(`{"big": "` + strings.Repeat("j", 200000) + `"}`)}},
		{name: "c_jsonb", typ: "jsonb", duckType: "JSON", vals: []string{`'{"b": 1, "a": {"c": [1, {"d": "é\n"}]}, "n": 1.500}'`, "'1e100'",
			`'"\u00e9"'`, "'null'", "'{}'"}},
		{name: "c_xml", typ: "xml", duckType: "VARCHAR", vals: []string{`'<a b="1">x &amp; y &lt; é</a>'`, "''", "'text only'"}},
		{name: "c_inet", typ: "inet", duckType: "VARCHAR", vals: []string{"'192.168.0.1/24'", "'::1'", "'10.0.0.1'", "'2001:db8::ff00:42:8329/64'"}},
		{name: "c_cidr", typ: "cidr", duckType: "VARCHAR", vals: []string{"'10.0.0.0/8'", "'2001:db8::/32'"}},
		{name: "c_macaddr", typ: "macaddr", duckType: "VARCHAR", vals: []string{"'08:00:2B:01:02:03'"}},
		{name: "c_macaddr8", typ: "macaddr8", duckType: "VARCHAR", vals: []string{"'08:00:2b:01:02:03:04:05'"}},
		{name: "c_bit", typ: "bit(3)", duckType: "VARCHAR", vals: []string{"B'101'", "B'000'"}},
		{name: "c_varbit", typ: "bit varying", duckType: "VARCHAR", vals: []string{"B''", "B'1011'"}},
		{name: "c_tsvector", typ: "tsvector", duckType: "VARCHAR", vals: []string{"'a fat cat:3A sat ''it''''s'''", "''"}},
		{name: "c_tsquery", typ: "tsquery", duckType: "VARCHAR", vals: []string{"'fat & (rat | !cat) <-> sat:*'"}},
		{name: "c_point", typ: "point", duckType: "VARCHAR", vals: []string{"'(1.5,-2)'", "'(NaN,Infinity)'", "'(1e-300,0.1)'"}},
		{name: "c_line", typ: "line", duckType: "VARCHAR", vals: []string{"'{1,2,3}'"}},
		{name: "c_lseg", typ: "lseg", duckType: "VARCHAR", vals: []string{"'[(0,0),(1,1)]'"}},
		{name: "c_box", typ: "box", duckType: "VARCHAR", vals: []string{"'(1,1),(0,0)'"}},
		{name: "c_path", typ: "path", duckType: "VARCHAR", vals: []string{"'[(0,0),(1,1),(2,0)]'", "'((0,0),(1,1))'"}},
		{name: "c_polygon", typ: "polygon", duckType: "VARCHAR", vals: []string{"'((0,0),(1,1),(1,0))'"}},
		{name: "c_circle", typ: "circle", duckType: "VARCHAR", vals: []string{"'<(0,0),5>'"}},
		{name: "c_int4range", typ: "int4range", duckType: "VARCHAR", vals: []string{"'[1,10)'", "'empty'", "'(,)'"}},
		{name: "c_int8range", typ: "int8range", duckType: "VARCHAR", vals: []string{"'[-9223372036854775808,9223372036854775807)'"}},
		{name: "c_numrange", typ: "numrange", duckType: "VARCHAR", vals: []string{"'(1.5,2.50]'", "'[-Infinity,Infinity]'"}},
		{name: "c_tsrange", typ: "tsrange", duckType: "VARCHAR", vals: []string{`'["2024-01-01 00:00:00.000001",infinity)'`}},
		{name: "c_tstzrange", typ: "tstzrange", duckType: "VARCHAR", vals: []string{`'["2024-01-01 00:00+05",)'`}},
		{name: "c_daterange", typ: "daterange", duckType: "VARCHAR", vals: []string{"'[2024-01-01,)'", "'(2000-01-01,2000-01-05]'"}},
		{name: "c_int4multirange", typ: "int4multirange", duckType: "VARCHAR", vals: []string{"'{[1,3),[5,7)}'", "'{}'"}},
		{name: "c_datemultirange", typ: "datemultirange", duckType: "VARCHAR", vals: []string{"'{[2024-01-01,2024-02-01),[2025-01-01,)}'"}},
		{name: "c_int_arr", typ: "integer[]", duckType: "VARCHAR", vals: []string{"'{1,NULL,3}'", "'{}'", "'[0:1]={7,8}'", "'{NULL}'"}},
		{name: "c_int_arr2", typ: "integer[]", duckType: "VARCHAR", vals: []string{"'{{1,2},{3,NULL}}'", "'{{{1}},{{2}}}'"}},
		{name: "c_text_arr", typ: "text[]", duckType: "VARCHAR", vals: []string{`'{"a b",NULL,"NULL","","q\"uote","back\\slash",é}'`}},
		{name: "c_ts_arr", typ: "timestamp with time zone[]", duckType: "VARCHAR", vals: []string{"'{infinity,\"2024-01-02 03:04:05+02\",NULL}'"}},
		{name: "c_jsonb_arr", typ: "jsonb[]", duckType: "VARCHAR", vals: []string{`ARRAY['{"a": 1}'::jsonb, NULL, '"x"']`}},
		{name: "c_bytea_arr", typ: "bytea[]", duckType: "VARCHAR", vals: []string{`ARRAY['\x00'::bytea, NULL, '\x']`}},
		{name: "c_char_arr", typ: "character(3)[]", duckType: "VARCHAR", vals: []string{"'{a,bc}'"}},
		{name: "c_bit_arr", typ: "bit(3)[]", duckType: "VARCHAR", vals: []string{"ARRAY[B'101', NULL]"}},
		{name: "c_float_arr", typ: "real[]", duckType: "VARCHAR", vals: []string{"'{NaN,-0,1.1754944e-38,0.1}'"}},
		{name: "Mixed \"Case\" ü col", typ: "text", duckType: "VARCHAR", vals: []string{"'odd name'"}},
		{name: "c_enum", typ: "fid_mood", pgType: "text", duckType: "VARCHAR", vals: []string{"'happy'", "'sad ''quoted'''", "'ünïcode'"}},
		{name: "c_enum_arr", typ: "fid_mood[]", pgType: "text", duckType: "VARCHAR", vals: []string{"'{happy,NULL,\"sad ''quoted''\"}'"}},
		{name: "c_dom_int", typ: "fid_posint", pgType: "integer", duckType: "INTEGER", vals: []string{"1", "2147483647"}},
		{name: "c_dom_num", typ: "fid_price", pgType: "numeric(7,2)", duckType: "DECIMAL(7,2)", kind: kDecimal, vals: []string{"'12345.67'", "'0.10'"}},
		{name: "c_dom_text", typ: "fid_code", pgType: "character varying(10)", duckType: "VARCHAR", vals: []string{"'abc'"}},
		{name: "c_composite", typ: "fid_pair", pgType: "text", duckType: "VARCHAR", vals: []string{`'(1,"x, y")'`, "'(,)'"}},
	}
}

const typesDDL = `
CREATE TYPE fid_mood AS ENUM ('happy', 'sad ''quoted''', 'ünïcode');
CREATE DOMAIN fid_posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN fid_price AS numeric(7,2);
CREATE DOMAIN fid_code AS varchar(10);
CREATE TYPE fid_pair AS (a integer, b text);
`

// insertTypeRows returns an INSERT of n rows; row i (1-based, key
// keyBase+i) takes every column's value number (i+shift) mod len(vals)
// when shift >= 0, the value i-1 (or NULL past the list) otherwise.
func typeRowsSQL(tbl string, cols []column, keys []int, shift int) string {
	var rows []string
	for i, k := range keys {
		vals := []string{fmt.Sprint(k)}
		for _, c := range cols {
			v := "NULL"
			switch {
			case shift >= 0:
				v = c.vals[(i+shift)%len(c.vals)]
			case i < len(c.vals):
				v = c.vals[i]
			}
			vals = append(vals, "("+v+")::"+c.typ)
		}
		rows = append(rows, "("+strings.Join(vals, ", ")+")")
	}
	return "INSERT INTO " + q(tbl) + " VALUES\n" + strings.Join(rows, ",\n")
}

func TestFidelity(t *testing.T) {
	started := time.Now()
	e := newEnv(t)
	// Odd server defaults on both sides: capture and the PostgreSQL driver
	// must not depend on them (capture pins its session; the driver must
	// read what capture wrote the same way).
	for _, db := range []string{e.sourceDB, e.destDB} {
		e.pg.Exec(t, "postgres", fmt.Sprintf(`ALTER DATABASE %s SET DateStyle = 'SQL, DMY';
			ALTER DATABASE %[1]s SET IntervalStyle = 'sql_standard'; ALTER DATABASE %[1]s SET TimeZone = 'Asia/Kathmandu';
			ALTER DATABASE %[1]s SET extra_float_digits = -3; ALTER DATABASE %[1]s SET bytea_output = 'escape';
			ALTER DATABASE %[1]s SET xmloption = 'document'`, q(db)))
	}
	src := e.connect(e.sourceDB)
	e.exec(src, typesDDL)

	cols := typeColumns()
	for _, ext := range []struct{ name, col, val string }{
		{"citext", "c_citext", "'MiXeD Case'"},
		{"hstore", "c_hstore", `'"a"=>"1", "b"=>NULL, "é"=>"\"q\""'`},
	} {
		if _, err := src.Exec(context.Background(), "CREATE EXTENSION IF NOT EXISTS "+ext.name); err != nil {
			t.Logf("column %s skipped: CREATE EXTENSION %s failed: %v", ext.col, ext.name, err)
			continue
		}
		cols = append(cols, column{name: ext.col, typ: ext.name, pgType: "text", duckType: "VARCHAR", vals: []string{ext.val}})
	}
	types := table{name: "fid_types", cols: append([]column{{name: "id", typ: "integer", duckType: "INTEGER"}}, cols...)}
	var defs []string
	for _, c := range types.cols {
		defs = append(defs, q(c.name)+" "+c.typ)
	}
	e.exec(src, "CREATE TABLE fid_types ("+strings.Join(defs, ", ")+", PRIMARY KEY (id))")

	// Unchanged TOASTed values (stored out of line, uncompressed, > 1 MB)
	// under both replica identities.
	toastCols := []column{{name: "id", typ: "integer", duckType: "INTEGER"}, {name: "n", typ: "integer", duckType: "INTEGER"},
		{name: "big", typ: "text", duckType: "VARCHAR"}, {name: "bigb", typ: "bytea", duckType: "BLOB", kind: kBytes},
		{name: "bigj", typ: "jsonb", duckType: "JSON"}}
	toastDefault := table{name: "fid_toast_default", cols: toastCols}
	toastFull := table{name: "fid_toast_full", cols: toastCols}
	for _, tb := range []string{toastDefault.name, toastFull.name} {
		e.exec(src, fmt.Sprintf(`CREATE TABLE %[1]s (id integer PRIMARY KEY, n integer, big text, bigb bytea, bigj jsonb);
			ALTER TABLE %[1]s ALTER COLUMN big SET STORAGE EXTERNAL, ALTER COLUMN bigb SET STORAGE EXTERNAL`, tb))
	}
	e.exec(src, "ALTER TABLE fid_toast_full REPLICA IDENTITY FULL")

	// Truncates of one and several tables, CASCADE and RESTART IDENTITY.
	simple := func(name string, extra ...column) table {
		return table{name: name, cols: append([]column{{name: "id", typ: "integer", duckType: "INTEGER"},
			{name: "v", typ: "text", duckType: "VARCHAR"}}, extra...)}
	}
	parent, child, solo := simple("fid_parent"), simple("fid_child"), simple("fid_solo")
	e.exec(src, `CREATE TABLE fid_parent (id serial PRIMARY KEY, v text);
		CREATE TABLE fid_child (id serial PRIMARY KEY, v text, parent_id integer REFERENCES fid_parent);
		CREATE TABLE fid_solo (id integer PRIMARY KEY, v text);
		CREATE TABLE fid_alter (id integer PRIMARY KEY, v text);
		CREATE TABLE fid_xml_decl (id integer PRIMARY KEY, x xml);
		CREATE TABLE "Fid Odd Tåble *>" (id integer PRIMARY KEY, "Odd ""col"" ü" text, "UPPER" bigint);
		CREATE TABLE fid_refuse_numeric (id integer PRIMARY KEY, v numeric(10,2));
		CREATE TABLE fid_refuse_ts (id integer PRIMARY KEY, v timestamp);
		CREATE TABLE fid_narrow (id integer PRIMARY KEY, n numeric(10,1));
		CREATE TABLE fid_generated (id integer PRIMARY KEY, a integer, g integer GENERATED ALWAYS AS (a * 2) STORED);
		CREATE TABLE fid_added (id integer PRIMARY KEY, v text);
		CREATE TABLE fid_tx (id integer PRIMARY KEY, v text);
		CREATE TABLE fid_drop (id integer PRIMARY KEY, a text, b text, c text);
		CREATE TABLE fid_rename (id integer PRIMARY KEY, old_name text);
		CREATE TABLE fid_late (id integer PRIMARY KEY, v text);
		CREATE TABLE fid_widen (id integer PRIMARY KEY, n numeric(10,1), s varchar(3), i integer);
		CREATE TABLE fid_part (id integer, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
		CREATE TABLE fid_part_eu PARTITION OF fid_part FOR VALUES IN ('eu');
		CREATE TABLE fid_part_us PARTITION OF fid_part FOR VALUES IN ('us');
		CREATE TABLE fid_lpart (id integer, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
		CREATE TABLE fid_lpart_a PARTITION OF fid_lpart FOR VALUES IN ('a');
		CREATE TABLE fid_lpart_b PARTITION OF fid_lpart FOR VALUES IN ('b');
		CREATE TABLE fid_volatile (id integer PRIMARY KEY, v text)`)

	e.start()
	duckPath := filepath.Join(e.dataDir, "fidelity.duckdb")
	pgDest := e.createPostgresDestination("pg")
	duckDest := e.createDuckDBDestination("duck", duckPath)
	mainTables := []string{"public.fid_types", "public.fid_toast_default",
		"public.fid_toast_full", "public.fid_parent", "public.fid_child", "public.fid_solo", "public.fid_alter",
		"public.fid_xml_decl", "public.Fid Odd Tåble *>", "public.fid_generated", "public.fid_added", "public.fid_volatile",
		"public.fid_tx", "public.fid_part", "public.fid_lpart_a", "public.fid_drop", "public.fid_rename"}
	mainPipe := e.createPipeline("fidelity", []int64{pgDest, duckDest}, mainTables...)
	// Values DuckDB cannot hold, each in its own pipeline and file: a
	// refused change stops its destination (until the DLQ sets it aside).
	refusals := []struct {
		table, value, want string
		pipeline           int64
	}{
		{table: "fid_refuse_numeric", value: "'NaN'", want: `column "v" (DECIMAL(10,2)), row with key id="1": value "NaN"`},
		{table: "fid_refuse_ts", value: "'294276-12-31 23:59:59'", want: `column "v" (TIMESTAMP), row with key id="1": value "294276-12-31 23:59:59"`},
	}
	for i := range refusals {
		r := &refusals[i]
		d := e.createDuckDBDestination("duck-"+r.table, filepath.Join(e.dataDir, r.table+".duckdb"))
		r.pipeline = e.createPipeline("refuse-"+r.table, []int64{d}, "public."+r.table)
	}
	// A source type change (not propagated): values that still fit the
	// destination column arrive, one that does not is refused by both.
	narrowPipe := e.createPipeline("narrow", []int64{e.createPostgresDestination("pg-narrow"),
		e.createDuckDBDestination("duck-narrow", filepath.Join(e.dataDir, "narrow.duckdb"))}, "public.fid_narrow")
	e.createPipeline("widen", []int64{e.createPostgresDestination("pg-widen"),
		e.createDuckDBDestination("duck-widen", filepath.Join(e.dataDir, "widen.duckdb"))}, "public.fid_widen")
	e.waitCapturing()
	t.Logf("setup done after %s", time.Since(started).Round(time.Millisecond))

	// Types: insert, update every row to other values, delete some,
	// re-insert, all batched in a few transactions.
	keys := make([]int, 0, 8)
	for i := 1; i <= 8; i++ {
		keys = append(keys, i)
	}
	e.exec(src, typeRowsSQL("fid_types", cols, keys, -1)+";"+
		typeRowsSQL("fid_types", cols, []int{100, 101, 102}, 0))
	e.exec(src, "BEGIN; DELETE FROM fid_types WHERE id IN (100, 101, 102);"+
		typeRowsSQL("fid_types", cols, []int{101, 103}, 1)+"; COMMIT")
	// Every column's value changes, each to a value of another row.
	var sets []string
	for _, c := range cols {
		sets = append(sets, fmt.Sprintf("%[1]s = (SELECT %[1]s FROM fid_types s WHERE s.id = fid_types.id %% 8 + 1)", q(c.name)))
	}
	e.exec(src, "UPDATE fid_types SET "+strings.Join(sets, ", ")+" WHERE id BETWEEN 1 AND 8")
	e.exec(src, "DELETE FROM fid_types WHERE id IN (3, 103)")

	// TOAST: insert > 1 MB values, then updates that leave them unchanged.
	for _, tb := range []string{toastDefault.name, toastFull.name} {
		e.exec(src, fmt.Sprintf(`INSERT INTO %[1]s SELECT g, g, repeat(md5(g::text), 35000), decode(repeat(md5(g::text || 'b'), 35000), 'hex'),
				jsonb_build_object('k', repeat(md5(g::text || 'j'), 35000), 'g', g) FROM generate_series(1, 3) g;
			UPDATE %[1]s SET n = n + 10;
			UPDATE %[1]s SET big = big || 'x' WHERE id = 2;
			UPDATE %[1]s SET n = n + 10, bigb = '\x00' WHERE id = 3;
			UPDATE %[1]s SET id = 4 WHERE id = 1`, tb))
	}

	// Truncates.
	e.exec(src, `INSERT INTO fid_parent (v) SELECT 'before ' || g FROM generate_series(1, 3) g;
		INSERT INTO fid_child (v, parent_id) SELECT 'before ' || g, g FROM generate_series(1, 3) g;
		INSERT INTO fid_solo SELECT g, 'before ' || g FROM generate_series(1, 5) g`)
	e.exec(src, `TRUNCATE fid_solo; INSERT INTO fid_solo VALUES (2, 'after single truncate')`)
	e.exec(src, `TRUNCATE fid_parent RESTART IDENTITY CASCADE;
		INSERT INTO fid_parent (v) VALUES ('after cascade 1'), ('after cascade 2');
		INSERT INTO fid_child (v, parent_id) VALUES ('after cascade', 1)`)
	e.exec(src, `BEGIN; INSERT INTO fid_solo VALUES (9, 'gone');
		TRUNCATE fid_solo, fid_child RESTART IDENTITY;
		INSERT INTO fid_solo VALUES (9, 'after multi truncate'); INSERT INTO fid_child (v, parent_id) VALUES ('restarted', 2); COMMIT`)

	// Added columns while streaming.
	e.exec(src, `INSERT INTO fid_alter VALUES (1, 'a'), (2, 'b');
		ALTER TABLE fid_alter ADD COLUMN plain text;
		INSERT INTO fid_alter VALUES (3, 'c', 'plain 3');
		ALTER TABLE fid_alter ADD COLUMN num numeric(6,2) DEFAULT 7.5;
		INSERT INTO fid_alter VALUES (4, 'd', NULL, 1.25);
		UPDATE fid_alter SET v = 'a2' WHERE id = 1`)
	e.exec(src, `ALTER TABLE fid_alter ADD COLUMN mood fid_mood, ADD COLUMN at timestamptz(3), ADD COLUMN tags text[];
		INSERT INTO fid_alter VALUES (5, 'e', NULL, NULL, 'sad ''quoted''', '2024-01-01 00:00:00.123+05', '{x,NULL}')`)
	alter := simple("fid_alter", column{name: "plain", typ: "text", duckType: "VARCHAR"},
		column{name: "num", typ: "numeric(6,2)", duckType: "DECIMAL(6,2)", kind: kDecimal},
		column{name: "mood", typ: "fid_mood", pgType: "text", duckType: "VARCHAR"},
		column{name: "at", typ: "timestamp(3) with time zone", duckType: "TIMESTAMP WITH TIME ZONE", kind: kTimestamp},
		column{name: "tags", typ: "text[]", duckType: "VARCHAR"})

	// Names that need quoting in SQL and encoding in NATS subjects.
	odd := table{name: "Fid Odd Tåble *>", cols: []column{{name: "id", typ: "integer", duckType: "INTEGER"},
		{name: `Odd "col" ü`, typ: "text", duckType: "VARCHAR"}, {name: "UPPER", typ: "bigint", duckType: "BIGINT"}}}
	e.exec(src, `INSERT INTO "Fid Odd Tåble *>" VALUES (1, 'x', 1), (2, NULL, 2); UPDATE "Fid Odd Tåble *>" SET "UPPER" = 3 WHERE id = 1;
		DELETE FROM "Fid Odd Tåble *>" WHERE id = 2`)
	e.exec(src, "INSERT INTO fid_generated (id, a) VALUES (1, 21), (2, NULL); UPDATE fid_generated SET a = 5 WHERE id = 2")
	generated := table{name: "fid_generated", cols: []column{{name: "id", typ: "integer", duckType: "INTEGER"},
		{name: "a", typ: "integer", duckType: "INTEGER"}}}
	e.exec(src, `INSERT INTO fid_xml_decl VALUES (1, xml(E'<?xml version="1.0"?>\n<r/>'))`)

	// Rolled-back transactions and subtransactions leave nothing; what a
	// released or surviving savepoint wrote arrives.
	e.exec(src, `BEGIN; INSERT INTO fid_tx VALUES (1, 'kept'), (2, 'kept');
		SAVEPOINT a; INSERT INTO fid_tx VALUES (3, 'rolled back'); UPDATE fid_tx SET v = 'rolled back' WHERE id = 1; DELETE FROM fid_tx WHERE id = 2;
		ROLLBACK TO SAVEPOINT a;
		SAVEPOINT b; INSERT INTO fid_tx VALUES (4, 'released'); SAVEPOINT c; UPDATE fid_tx SET v = 'nested rolled back' WHERE id = 4; ROLLBACK TO c;
		RELEASE SAVEPOINT b; UPDATE fid_tx SET v = 'kept, updated' WHERE id = 2; COMMIT`)
	e.exec(src, `BEGIN; INSERT INTO fid_tx VALUES (5, 'whole transaction rolled back'); UPDATE fid_tx SET v = 'no' WHERE id = 1;
		DELETE FROM fid_tx WHERE id = 4; ROLLBACK`)
	txTable := simple("fid_tx")

	// A partitioned table in the pipeline by its root: changes to every
	// partition, and rows moving between partitions (the key includes the
	// partition column, so the row changes key too).
	e.exec(src, `INSERT INTO fid_part VALUES (1, 'eu', 'a'), (2, 'us', 'b'), (3, 'eu', 'c');
		UPDATE fid_part SET region = 'us', v = 'moved' WHERE id = 1;
		UPDATE fid_part SET v = 'updated in place' WHERE id = 2;
		DELETE FROM fid_part WHERE id = 3;
		UPDATE fid_part SET region = 'eu' WHERE id = 2`)
	partTable := table{name: "fid_part", cols: []column{{name: "id", typ: "integer", duckType: "INTEGER"},
		{name: "region", typ: "text", duckType: "VARCHAR"}, {name: "v", typ: "text", duckType: "VARCHAR"}}}
	// One partition in the pipeline on its own (its root is not): its
	// changes arrive under its name; a row moving out of it is gone there.
	e.exec(src, `INSERT INTO fid_lpart VALUES (1, 'a', 'x'), (2, 'a', 'y'), (3, 'b', 'not followed');
		UPDATE fid_lpart SET region = 'b' WHERE id = 1; UPDATE fid_lpart SET region = 'a', v = 'moved in' WHERE id = 3;
		UPDATE fid_lpart SET v = 'y2' WHERE id = 2`)
	leafTable := table{name: "fid_lpart_a", cols: partTable.cols}

	for _, r := range refusals {
		e.exec(src, fmt.Sprintf("INSERT INTO %s VALUES (1, %s)", r.table, r.value))
	}

	e.waitEqual(120*time.Second, duckPath, types, toastDefault, toastFull, parent, child, solo, odd, txTable, partTable, leafTable)
	t.Logf("types, TOAST and truncates equal after %s", time.Since(started).Round(time.Millisecond))
	e.checkAddedDefault(duckPath)
	e.checkXMLDeclaration(duckPath)
	// Generated columns: PostgreSQL 15-17's logical replication does not
	// send them, so destinations get the table without them.
	e.waitEqual(30*time.Second, duckPath, generated)
	e.checkNoColumn(duckPath, "fid_generated", "g")
	e.waitEqual(30*time.Second, duckPath, alter)
	e.checkAddedColumns(duckPath)
	e.checkVolatileDefault(duckPath, mainPipe)
	e.checkDropColumn(duckPath)
	e.checkRenameColumn(duckPath, mainPipe)
	e.checkLateTable(duckPath, mainPipe, "fidelity", []int64{pgDest, duckDest}, mainTables)
	e.checkWidened(filepath.Join(e.dataDir, "widen.duckdb"))

	e.checkNarrowed(narrowPipe, filepath.Join(e.dataDir, "narrow.duckdb"))
	for _, r := range refusals {
		e.waitRefused(r.pipeline, r.table, r.want, filepath.Join(e.dataDir, r.table+".duckdb"))
	}
	t.Logf("done after %s", time.Since(started).Round(time.Millisecond))
}

// waitRefused waits until the pipeline's DuckDB destination reports a
// permanent error naming the table, column and value, and checks that the
// value did not arrive in any changed form.
func (e *env) waitRefused(pipeline int64, tbl, want, path string) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for {
		var d pipelineDetail
		e.mustAPI("GET", fmt.Sprintf("/pipelines/%d", pipeline), nil, &d)
		if len(d.Destinations) == 1 {
			last = d.Destinations[0].LastError
			if strings.Contains(last, "permanent") && strings.Contains(last, "public."+tbl) && strings.Contains(last, want) {
				break
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: no permanent error containing %q within 60s; last error %q", tbl, want, last)
		}
		time.Sleep(300 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	err := duckQuery(ctx, path, func(db *sql.DB) error {
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM main."+q(tbl)).Scan(&n)
		if err != nil && strings.Contains(err.Error(), "does not exist") {
			return nil
		}
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatalf("%s: read duckdb: %v", tbl, err)
	}
	if n != 0 {
		e.t.Fatalf("%s: %d rows arrived in DuckDB despite the refusal", tbl, n)
	}
}

// checkAddedDefault: ADD COLUMN … DEFAULT fills the rows that exist at the
// source without writing a change for them; the change events carry the
// value (columns[].existing_value) and both destinations fill the rows
// they hold with it. Rows 2 and 3 were never touched after the ALTER.
func (e *env) checkAddedDefault(duckPath string) {
	e.t.Helper()
	dst := e.connect(e.destDB)
	const probe = "SELECT coalesce(string_agg(id::text || '=' || coalesce(num::text, 'NULL'), ',' ORDER BY id), '') FROM fid_alter"
	want := "1=7.50,2=7.50,3=7.50,4=1.25,5=NULL"
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var pgGot, duckGot string
		pgErr := dst.QueryRow(ctx, probe).Scan(&pgGot)
		duckErr := duckQuery(ctx, duckPath, func(db *sql.DB) error {
			return db.QueryRowContext(ctx, "SELECT coalesce(string_agg(CAST(id AS VARCHAR) || '=' || coalesce(CAST(num AS VARCHAR), 'NULL'), ',' ORDER BY id), '') FROM main.fid_alter").Scan(&duckGot)
		})
		cancel()
		if pgErr == nil && duckErr == nil && pgGot == want && duckGot == want {
			e.t.Logf("rows that existed before ADD COLUMN … DEFAULT hold the default at both destinations (%s)", want)
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("fid_alter after ADD COLUMN … DEFAULT: postgres %q (%v), duckdb %q (%v), want %q at both", pgGot, pgErr, duckGot, duckErr, want)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// checkXMLDeclaration pins down a limit of logical decoding itself
// (docs/types.md): xml's output function, which pgoutput uses, drops an
// XML declaration that only says version 1.0 (and the newline after it),
// so destinations receive and store "<r/>". Both sides print the same
// output; only xml::text, the stored string, differs.
func (e *env) checkXMLDeclaration(duckPath string) {
	e.t.Helper()
	src := e.connect(e.sourceDB)
	dst := e.connect(e.destDB)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var srcOut, srcText string
	if err := src.QueryRow(ctx, "SELECT concat(x), x::text FROM fid_xml_decl WHERE id = 1").Scan(&srcOut, &srcText); err != nil {
		e.t.Fatalf("read fid_xml_decl: %v", err)
	}
	if srcOut != "<r/>" || srcText != "<?xml version=\"1.0\"?>\n<r/>" {
		e.t.Fatalf("source xml output %q, text %q: PostgreSQL's behaviour changed", srcOut, srcText)
	}
	for {
		var pgText, duckText string
		pgErr := dst.QueryRow(ctx, "SELECT x::text FROM fid_xml_decl WHERE id = 1").Scan(&pgText)
		duckErr := duckQuery(ctx, duckPath, func(db *sql.DB) error {
			return db.QueryRowContext(ctx, "SELECT x FROM main.fid_xml_decl WHERE id = 1").Scan(&duckText)
		})
		if pgErr == nil && duckErr == nil {
			if pgText != srcOut || duckText != srcOut {
				e.t.Fatalf("fid_xml_decl: postgres %q, duckdb %q, want the output %q", pgText, duckText, srcOut)
			}
			return
		}
		if ctx.Err() != nil {
			e.t.Fatalf("fid_xml_decl did not arrive: postgres %v, duckdb %v", pgErr, duckErr)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// checkNarrowed widens a source column after its destination columns were
// created: a value that the old type still holds exactly arrives, and one
// it would round fails the batch permanently at both destinations, naming
// table, column, key and value, instead of being stored rounded.
func (e *env) checkNarrowed(pipeline int64, duckPath string) {
	e.t.Helper()
	src := e.connect(e.sourceDB)
	dst := e.connect(e.destDB)
	e.exec(src, "INSERT INTO fid_narrow VALUES (1, 1.5)")
	e.waitProbe(dst, duckPath, "1=1.5")
	e.exec(src, "ALTER TABLE fid_narrow ALTER COLUMN n TYPE numeric(10,3); INSERT INTO fid_narrow VALUES (2, 2.5)")
	e.waitProbe(dst, duckPath, "1=1.5,2=2.5")
	e.exec(src, "INSERT INTO fid_narrow VALUES (3, 1.005)")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var d pipelineDetail
		e.mustAPI("GET", fmt.Sprintf("/pipelines/%d", pipeline), nil, &d)
		refused := 0
		var errs []string
		for _, dest := range d.Destinations {
			errs = append(errs, dest.Name+": "+dest.LastError)
			if strings.Contains(dest.LastError, "permanent") && strings.Contains(dest.LastError, `fid_narrow column "n"`) &&
				strings.Contains(dest.LastError, `id="3"`) && strings.Contains(dest.LastError, `"1.005"`) {
				refused++
			}
		}
		if refused == 2 {
			e.t.Logf("fid_narrow refused as expected: %q", errs)
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("fid_narrow: value 1.005 for numeric(10,1) columns not refused by both destinations within 60s: %q", errs)
		}
		time.Sleep(300 * time.Millisecond)
	}
	e.waitProbe(dst, duckPath, "1=1.5,2=2.5")
}

// waitProbe waits until fid_narrow reads want at both destinations.
func (e *env) waitProbe(dst *pgx.Conn, duckPath, want string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var pgGot, duckGot string
		pgErr := dst.QueryRow(ctx, "SELECT coalesce(string_agg(id::text || '=' || n::text, ',' ORDER BY id), '') FROM fid_narrow").Scan(&pgGot)
		duckErr := duckQuery(ctx, duckPath, func(db *sql.DB) error {
			return db.QueryRowContext(ctx, "SELECT coalesce(string_agg(CAST(id AS VARCHAR) || '=' || CAST(n AS VARCHAR), ',' ORDER BY id), '') FROM main.fid_narrow").Scan(&duckGot)
		})
		cancel()
		if pgErr == nil && duckErr == nil && pgGot == want && duckGot == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("fid_narrow: postgres %q (%v), duckdb %q (%v), want %q", pgGot, pgErr, duckGot, duckErr, want)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// checkNoColumn checks that neither destination has column col in tbl.
func (e *env) checkNoColumn(duckPath, tbl, col string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var pgN, duckN int
	dst := e.connect(e.destDB)
	if err := dst.QueryRow(ctx, "SELECT count(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2", tbl, col).Scan(&pgN); err != nil {
		e.t.Fatalf("read postgres columns of %s: %v", tbl, err)
	}
	if err := duckQuery(ctx, duckPath, func(db *sql.DB) error {
		return db.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = ?", tbl, col).Scan(&duckN)
	}); err != nil {
		e.t.Fatalf("read duckdb columns of %s: %v", tbl, err)
	}
	if pgN != 0 || duckN != 0 {
		e.t.Fatalf("%s.%s: postgres has %d, duckdb %d such columns; expected none (generated columns are not replicated)", tbl, col, pgN, duckN)
	}
	e.t.Logf("known limit confirmed: generated column %s.%s is not replicated", tbl, col)
}
