package fidelity

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// addedColumnsTable is fid_added after checkAddedColumns: columns added
// with defaults of many types while rows existed.
func addedColumnsTable() table {
	return table{name: "fid_added", cols: []column{
		{name: "id", typ: "integer", duckType: "INTEGER"},
		{name: "v", typ: "text", duckType: "VARCHAR"},
		{name: "d_num", typ: "numeric(6,2)", duckType: "DECIMAL(6,2)", kind: kDecimal},
		{name: "d_text", typ: "text", duckType: "VARCHAR"},
		{name: "d_ts", typ: "timestamp(3) with time zone", duckType: "TIMESTAMP WITH TIME ZONE", kind: kTimestamp},
		{name: "d_iv", typ: "interval", duckType: "INTERVAL", kind: kInterval},
		{name: "d_bytes", typ: "bytea", duckType: "BLOB", kind: kBytes},
		{name: "d_arr", typ: "integer[]", duckType: "VARCHAR"},
		{name: "d_jsonb", typ: "jsonb", duckType: "JSON"},
		{name: "d_mood", typ: "fid_mood", pgType: "text", duckType: "VARCHAR"},
		{name: "d_bool", typ: "boolean", duckType: "BOOLEAN", kind: kBool},
		{name: "d_big", typ: "bigint", duckType: "BIGINT"},
		{name: "d_float", typ: "double precision", duckType: "DOUBLE", kind: kFloat64},
		{name: "d_date", typ: "date", duckType: "DATE", kind: kDate},
		{name: "d_none", typ: "text", duckType: "VARCHAR"},
	}}
}

// checkAddedColumns: rows that exist when ALTER TABLE … ADD COLUMN …
// DEFAULT runs hold the default at the source without a change for any of
// them. Rows 1 and 2 reach both destinations before the ALTER; row 3 is
// written before the ALTER in the same transaction (so in the same batch
// as the first change listing the new columns); rows 4 and 5 after it,
// with their own values and NULLs. Every column of every row must equal
// the source's.
func (e *env) checkAddedColumns(duckPath string) {
	e.t.Helper()
	src := e.connect(e.sourceDB)
	e.exec(src, "INSERT INTO fid_added VALUES (1, 'one'), (2, 'two')")
	e.waitEqual(30*time.Second, duckPath, table{name: "fid_added", cols: addedColumnsTable().cols[:2]})
	e.exec(src, `BEGIN;
		INSERT INTO fid_added VALUES (3, 'three, same transaction as the ALTER');
		ALTER TABLE fid_added ADD COLUMN d_num numeric(6,2) DEFAULT 7.5, ADD COLUMN d_text text DEFAULT E'it''s \\ "q"\n',
			ADD COLUMN d_ts timestamptz(3) DEFAULT '2024-01-02 03:04:05.123+05:45', ADD COLUMN d_iv interval DEFAULT '1 mon -2 days 03:00:00',
			ADD COLUMN d_bytes bytea DEFAULT '\x00ff', ADD COLUMN d_arr int[] DEFAULT '{1,NULL}',
			ADD COLUMN d_jsonb jsonb DEFAULT '{"a": [1, "x"]}', ADD COLUMN d_mood fid_mood DEFAULT 'sad ''quoted''',
			ADD COLUMN d_bool boolean DEFAULT false, ADD COLUMN d_big bigint DEFAULT -9223372036854775808,
			ADD COLUMN d_float float8 DEFAULT 0.1, ADD COLUMN d_date date DEFAULT 'infinity', ADD COLUMN d_none text;
		INSERT INTO fid_added (id, v, d_num, d_text, d_bool) VALUES (4, 'four', 1.25, NULL, true);
		COMMIT`)
	e.exec(src, `INSERT INTO fid_added (id, v, d_num, d_text, d_ts, d_iv, d_bytes, d_arr, d_jsonb, d_mood, d_bool, d_big, d_float, d_date)
		VALUES (5, 'five', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	e.waitEqual(60*time.Second, duckPath, addedColumnsTable())
	// The default is not left on the destination columns: only values
	// sent decide a row's value.
	dst := e.connect(e.destDB)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var n int
	if err := dst.QueryRow(ctx, `SELECT count(*) FROM pg_attrdef WHERE adrelid = 'fid_added'::regclass`).Scan(&n); err != nil || n != 0 {
		e.t.Fatalf("fid_added at the postgres destination: %d column defaults (%v), want none", n, err)
	}
	e.t.Logf("ADD COLUMN … DEFAULT: rows that existed before hold the default at both destinations")
}

// checkVolatileDefault: a column added with a volatile default
// (gen_random_uuid(), clock_timestamp(), nextval()) makes PostgreSQL
// rewrite the table, giving every existing row its own value, with no
// change for any of them and no single value a change event could carry.
// Capture notices the new column when the table is described again and
// creates a backfill job of the table (ROSETTA_CAPTURE_BACKFILL_ON_REWRITE,
// docs/types.md), so both destinations converge to the source's values,
// u included, without a manual backfill.
func (e *env) checkVolatileDefault(duckPath string, pipeline int64) {
	e.t.Helper()
	src := e.connect(e.sourceDB)
	e.exec(src, "INSERT INTO fid_volatile VALUES (1, 'one'), (2, 'two')")
	before := table{name: "fid_volatile", cols: []column{{name: "id", typ: "integer", duckType: "INTEGER"}, {name: "v", typ: "text", duckType: "VARCHAR"}}}
	e.waitEqual(30*time.Second, duckPath, before)
	e.exec(src, "ALTER TABLE fid_volatile ADD COLUMN u uuid DEFAULT gen_random_uuid(); INSERT INTO fid_volatile (id, v) VALUES (3, 'three')")
	after := table{name: "fid_volatile", cols: append(before.cols, column{name: "u", typ: "uuid", duckType: "UUID"})}
	e.waitEqual(60*time.Second, duckPath, after)
	// The rows' values came through a job capture created, not by chance.
	var jobs struct {
		Items []struct {
			ID    int64  `json:"id"`
			Table string `json:"table"`
			Kind  string `json:"kind"`
		} `json:"items"`
	}
	e.mustAPI("GET", fmt.Sprintf("/pipelines/%d/backfill", pipeline), nil, &jobs)
	var ids []int64
	for _, j := range jobs.Items {
		if j.Table == "public.fid_volatile" && j.Kind == "backfill" {
			ids = append(ids, j.ID)
		}
	}
	if len(ids) != 1 {
		e.t.Fatalf("backfill jobs of public.fid_volatile after ADD COLUMN … DEFAULT gen_random_uuid(): %v, want one created by capture (all jobs: %+v)", ids, jobs.Items)
	}
	e.t.Logf("volatile default: capture created backfill job %d; both destinations hold the source's values of u", ids[0])
}

// probe reads "id=<text of col>" for every row of tbl, ordered by id, at
// both destinations ("NULL" for NULL).
func (e *env) probe(duckPath, tbl, col string) (pg, duck string, err error) {
	dst := e.connect(e.destDB)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := dst.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(string_agg(id || '=' || coalesce(%s::text, 'NULL'), ',' ORDER BY id), '') FROM %s`,
		q(col), q(tbl))).Scan(&pg); err != nil {
		return "", "", err
	}
	err = duckQuery(ctx, duckPath, func(db *sql.DB) error {
		return db.QueryRowContext(ctx, fmt.Sprintf(`SELECT coalesce(string_agg(CAST(id AS VARCHAR) || '=' || coalesce(CAST(%s AS VARCHAR), 'NULL'), ',' ORDER BY id), '') FROM main.%s`,
			q(col), q(tbl))).Scan(&duck)
	})
	return pg, duck, err
}

// waitProbeBoth waits until probe reads want at both destinations.
func (e *env) waitProbeBoth(duckPath, tbl, col, want string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pg, duck, err := e.probe(duckPath, tbl, col)
		if err == nil && pg == want && duck == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s.%s: postgres %q, duckdb %q (%v), want %q at both", tbl, col, pg, duck, err, want)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// checkDropColumn: a column dropped at the source stays at both
// destinations (the default "keep" policy, docs/types.md); rows not
// written since keep their value in it, rows inserted or updated after the
// drop hold NULL, and the remaining columns equal the source's.
func (e *env) checkDropColumn(duckPath string) {
	e.t.Helper()
	src := e.connect(e.sourceDB)
	e.exec(src, "INSERT INTO fid_drop VALUES (1, 'a1', 'b1', 'c1'), (2, 'a2', 'b2', 'c2')")
	e.waitProbeBoth(duckPath, "fid_drop", "b", "1=b1,2=b2")
	e.exec(src, "ALTER TABLE fid_drop DROP COLUMN b; INSERT INTO fid_drop VALUES (3, 'a3', 'c3'); UPDATE fid_drop SET a = 'a2x' WHERE id = 2")
	e.waitEqual(30*time.Second, duckPath, table{name: "fid_drop", cols: []column{{name: "id", typ: "integer", duckType: "INTEGER"},
		{name: "a", typ: "text", duckType: "VARCHAR"}, {name: "c", typ: "text", duckType: "VARCHAR"}}})
	e.waitProbeBoth(duckPath, "fid_drop", "b", "1=b1,2=NULL,3=NULL")
	e.t.Logf("DROP COLUMN: the column stays at both destinations, old rows keep their values, rows inserted or updated since hold NULL")
}

// checkRenameColumn: a source column renamed with RENAME COLUMN is renamed
// at both destinations (capture sends each column's attnum, which survives
// the rename; docs/types.md). Rows not written since keep their values
// under the new name, rows written after the rename land there too, and no
// column of the old name is left. The pipeline is not needed (no backfill
// is).
func (e *env) checkRenameColumn(duckPath string, _ int64) {
	e.t.Helper()
	src := e.connect(e.sourceDB)
	e.exec(src, "INSERT INTO fid_rename VALUES (1, 'x1'), (2, 'x2')")
	e.waitProbeBoth(duckPath, "fid_rename", "old_name", "1=x1,2=x2")
	e.exec(src, "ALTER TABLE fid_rename RENAME COLUMN old_name TO new_name; INSERT INTO fid_rename VALUES (3, 'x3'); UPDATE fid_rename SET new_name = 'x1b' WHERE id = 1")
	e.waitProbeBoth(duckPath, "fid_rename", "new_name", "1=x1b,2=x2,3=x3")
	e.waitEqual(30*time.Second, duckPath, table{name: "fid_rename", cols: []column{{name: "id", typ: "integer", duckType: "INTEGER"},
		{name: "new_name", typ: "text", duckType: "VARCHAR"}}})
	dst := e.connect(e.destDB)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var pgOld, duckOld int
	if err := dst.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'fid_rename' AND column_name = 'old_name'`).Scan(&pgOld); err != nil {
		e.t.Fatalf("read postgres columns: %v", err)
	}
	if err := duckQuery(ctx, duckPath, func(db *sql.DB) error {
		return db.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_columns() WHERE table_name = 'fid_rename' AND column_name = 'old_name'`).Scan(&duckOld)
	}); err != nil {
		e.t.Fatalf("read duckdb columns: %v", err)
	}
	if pgOld != 0 || duckOld != 0 {
		e.t.Fatalf("fid_rename: column old_name left after the rename (postgres %d, duckdb %d)", pgOld, duckOld)
	}
	e.t.Logf("RENAME COLUMN: renamed at both destinations; rows not written since keep their values under the new name")
}

// checkLateTable adds a table to the running pipeline (PUT with the
// snapshot on): rows written before it was added arrive through its
// snapshot, rows written after through the stream.
func (e *env) checkLateTable(duckPath string, pipeline int64, name string, destIDs []int64, tables []string) {
	e.t.Helper()
	src := e.connect(e.sourceDB)
	e.exec(src, "INSERT INTO fid_late VALUES (1, 'before the table joined'), (2, 'before, updated later')")
	e.mustAPI("PUT", fmt.Sprintf("/pipelines/%d", pipeline), map[string]any{"name": name, "source_id": e.createSource(),
		"destination_ids": destIDs, "tables": append(tables, "public.fid_late"), "snapshot": true}, nil)
	late := table{name: "fid_late", cols: []column{{name: "id", typ: "integer", duckType: "INTEGER"}, {name: "v", typ: "text", duckType: "VARCHAR"}}}
	e.waitEqual(60*time.Second, duckPath, late)
	e.exec(src, "INSERT INTO fid_late VALUES (3, 'after'); UPDATE fid_late SET v = 'updated after' WHERE id = 2; DELETE FROM fid_late WHERE id = 1")
	e.waitEqual(60*time.Second, duckPath, late)
	e.t.Logf("a table added to a running pipeline: snapshot rows and later changes equal at both destinations")
}

// checkWidened: source columns widened with ALTER COLUMN … TYPE (integer to
// bigint, varchar(3) to varchar(10), numeric(10,1) to numeric(12,3)) are
// widened at both destinations, so values only the new types hold arrive
// exactly and the old rows read as at the source (1.5 is 1.500 there too).
func (e *env) checkWidened(duckPath string) {
	e.t.Helper()
	src := e.connect(e.sourceDB)
	e.exec(src, "INSERT INTO fid_widen VALUES (1, 1.5, 'abc', 7)")
	before := table{name: "fid_widen", cols: []column{{name: "id", typ: "integer", duckType: "INTEGER"},
		{name: "n", typ: "numeric(10,1)", duckType: "DECIMAL(10,1)", kind: kDecimal},
		{name: "s", typ: "character varying(3)", duckType: "VARCHAR"}, {name: "i", typ: "integer", duckType: "INTEGER"}}}
	e.waitEqual(30*time.Second, duckPath, before)
	e.exec(src, `ALTER TABLE fid_widen ALTER COLUMN n TYPE numeric(12,3), ALTER COLUMN s TYPE varchar(10), ALTER COLUMN i TYPE bigint;
		INSERT INTO fid_widen VALUES (2, 123456789.005, 'abcdefghij', 9223372036854775807)`)
	widened := table{name: "fid_widen", cols: []column{{name: "id", typ: "integer", duckType: "INTEGER"},
		{name: "n", typ: "numeric(12,3)", duckType: "DECIMAL(12,3)", kind: kDecimal},
		{name: "s", typ: "character varying(10)", duckType: "VARCHAR"}, {name: "i", typ: "bigint", duckType: "BIGINT"}}}
	e.waitEqual(30*time.Second, duckPath, widened)
	e.t.Logf("compatible widening: both destinations' columns follow the source's types")
}
