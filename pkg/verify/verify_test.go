package verify

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// sourceDDL is a table with a value of every kind verify normalises, and a
// table with a composite key whose text column orders differently under a
// locale collation than in byte order.
const sourceDDL = `
CREATE TABLE items (
	id int PRIMARY KEY, name text, price numeric(10,2), ratio double precision, r real, happened timestamptz, ts timestamp,
	d date, blob bytea, ok boolean, doc jsonb, span interval, tags text[]);
INSERT INTO items SELECT i, 'item ' || i, i * 1.5, i / 3.0, i / 7.0, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 hour 1 microsecond',
	'1999-12-31 23:59:59.5'::timestamp + i * interval '1 day', date '2000-01-01' + i, decode(lpad(to_hex(i), 4, '0'), 'hex'), i % 2 = 0,
	jsonb_build_object('i', i, 'x', 'y'), make_interval(months => i, days => i, secs => i * 0.25), ARRAY['a', 'b' || i]
	FROM generate_series(1, 40) i;
UPDATE items SET ratio = 'NaN', r = '-Infinity', happened = 'infinity', d = '-infinity' WHERE id = 7;
UPDATE items SET name = NULL, price = NULL, blob = NULL, doc = NULL WHERE id = 8;
CREATE TABLE pairs (region text, n int, v text, PRIMARY KEY (region, n));
INSERT INTO pairs SELECT r, n, r || n FROM unnest(ARRAY['a', 'B', 'b', 'Z', 'é', '_x']) r, generate_series(1, 5) n;
`

// duckDDL is the same data as the duckdb driver would store it
// (docs/duckdb.md), with its bookkeeping columns, which verify ignores.
const duckDDL = `
CREATE TABLE main.items (id INTEGER PRIMARY KEY, name VARCHAR, price DECIMAL(10,2), ratio DOUBLE, r FLOAT, happened TIMESTAMPTZ,
	ts TIMESTAMP, d DATE, blob BLOB, ok BOOLEAN, doc JSON, span INTERVAL, tags VARCHAR, _rosetta_lsn BIGINT, _rosetta_seq BIGINT);
CREATE TABLE main.pairs (region VARCHAR, n INTEGER, v VARCHAR, _rosetta_lsn BIGINT, _rosetta_seq BIGINT, PRIMARY KEY (region, n));
`

func copyToDuck(t *testing.T, ctx context.Context, pg *testkit.Postgres, db, path string) {
	t.Helper()
	duck, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	if _, err := duck.Exec(duckDDL); err != nil {
		t.Fatal(err)
	}
	src := pg.Connect(t, db)
	rows, err := src.Query(ctx, `SELECT id, name, price::text, ratio::text, r::text, happened::text, ts::text, d::text, encode(blob, 'hex'), ok, doc::text,
		(extract(year FROM span) * 12 + extract(month FROM span))::int, extract(day FROM span)::int,
		(extract(hour FROM span) * 3600000000 + extract(minute FROM span) * 60000000 + extract(microseconds FROM span))::bigint, tags::text FROM items`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		v := make([]any, 15)
		ptrs := make([]any, 15)
		for i := range v {
			ptrs[i] = &v[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		if _, err := duck.Exec(`INSERT INTO main.items VALUES (?, ?, CAST(? AS DECIMAL(10,2)), CAST(? AS DOUBLE), CAST(? AS FLOAT),
			CAST(? AS TIMESTAMPTZ), CAST(? AS TIMESTAMP), CAST(? AS DATE), unhex(?), ?, ?,
			to_months(?) + to_days(?) + to_microseconds(?), ?, 1, 1)`, v...); err != nil {
			t.Fatalf("insert %v: %v", v, err)
		}
	}
	rows.Close()
	if _, err := src.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	prs, err := src.Query(ctx, `SELECT region, n, v FROM pairs`)
	if err != nil {
		t.Fatal(err)
	}
	for prs.Next() {
		var r, v string
		var n int
		if err := prs.Scan(&r, &n, &v); err != nil {
			t.Fatal(err)
		}
		if _, err := duck.Exec(`INSERT INTO main.pairs VALUES (?, ?, ?, 1, 1)`, r, n, v); err != nil {
			t.Fatal(err)
		}
	}
	prs.Close()
}

type counts struct{ src, dst, missing, extra, differing int64 }

func TestVerifyFindsPlantedDifferences(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := testkit.StartPostgres(t)
	srcDB := pg.CreateDatabase(t, "src")
	dstDB := pg.CreateDatabase(t, "dst")
	pg.Exec(t, srcDB, sourceDDL)
	pg.Exec(t, dstDB, sourceDDL+`ALTER TABLE items ADD COLUMN _rosetta_lsn bigint DEFAULT 1; ALTER TABLE pairs ADD COLUMN _rosetta_lsn bigint DEFAULT 1;`)
	path := filepath.Join(t.TempDir(), "dest.duckdb")
	copyToDuck(t, ctx, pg, srcDB, path)

	src := pg.Connect(t, srcDB)
	dests := []Destination{
		&Postgres{Label: "pg", Conn: pg.Connect(t, dstDB), Schema: "public"},
		&DuckDB{Label: "duck", Path: path, Schema: "main", Querier: destquery.NewQuerier(nil, nil)},
	}
	ids := []int64{1, 2}
	tables := []string{"public.items", "public.pairs"}
	run := func(chunk int) map[string]TableResult {
		t.Helper()
		var progress int
		res, err := Run(ctx, src, tables, dests, ids, Options{ChunkRows: chunk, Progress: func(Progress) { progress++ }})
		if err != nil {
			t.Fatal(err)
		}
		if progress == 0 {
			t.Error("no progress reported")
		}
		out := map[string]TableResult{}
		for _, r := range res {
			out[r.Table+"@"+r.Destination] = r
		}
		return out
	}
	check := func(t *testing.T, got map[string]TableResult, want map[string]counts, wantKeys map[string][]string) {
		t.Helper()
		for k, w := range want {
			r, ok := got[k]
			if !ok {
				t.Errorf("%s: no result", k)
				continue
			}
			if r.Error != "" {
				t.Errorf("%s: %s", k, r.Error)
				continue
			}
			c := counts{r.SourceRows, r.DestinationRows, r.Missing, r.Extra, r.Differing}
			if c != w {
				t.Errorf("%s: got %+v, want %+v", k, c, w)
			}
			wantStatus := StatusEqual
			if w.missing+w.extra+w.differing > 0 {
				wantStatus = StatusDifferent
			}
			if r.Status != wantStatus {
				t.Errorf("%s: status %s, want %s", k, r.Status, wantStatus)
			}
			var keys []string
			for _, kd := range r.Keys {
				keys = append(keys, string(kd.Diff)+":"+strings.Join(kd.Key, ","))
			}
			sort.Strings(keys)
			if wk, ok := wantKeys[k]; ok && !reflect.DeepEqual(keys, wk) {
				t.Errorf("%s: keys %q, want %q", k, keys, wk)
			}
		}
	}
	equal := map[string]counts{
		"public.items@pg": {40, 40, 0, 0, 0}, "public.items@duck": {40, 40, 0, 0, 0},
		"public.pairs@pg": {30, 30, 0, 0, 0}, "public.pairs@duck": {30, 30, 0, 0, 0},
	}
	for _, chunk := range []int{3, 7, 1000} {
		check(t, run(chunk), equal, nil)
	}

	// Plant a changed value, a missing row and an extra row in each
	// destination, and a change of one microsecond, of a float's last
	// bit, and of a pair key's case.
	pg.Exec(t, dstDB, `UPDATE items SET name = 'changed' WHERE id = 5; DELETE FROM items WHERE id = 17;
		INSERT INTO items (id, name) VALUES (41, 'extra'); UPDATE items SET happened = happened + interval '1 microsecond' WHERE id = 30;
		UPDATE pairs SET v = 'x' WHERE region = 'b' AND n = 2; DELETE FROM pairs WHERE region = 'Z' AND n = 5`)
	duck, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := duck.Exec(`UPDATE main.items SET price = 3.01 WHERE id = 2; DELETE FROM main.items WHERE id = 40;
		INSERT INTO main.items (id, name) VALUES (0, 'extra'); UPDATE main.items SET ratio = nextafter(ratio, 10) WHERE id = 9;
		UPDATE main.items SET tags = '{a,b}' WHERE id = 8;
		INSERT INTO main.pairs VALUES ('c', 1, 'c1', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	duck.Close()
	want := map[string]counts{
		"public.items@pg":   {40, 40, 1, 1, 2},
		"public.items@duck": {40, 40, 1, 1, 3},
		"public.pairs@pg":   {30, 29, 1, 0, 1},
		"public.pairs@duck": {30, 31, 0, 1, 0},
	}
	keys := map[string][]string{
		"public.items@pg":   {"differing:30", "differing:5", "extra:41", "missing:17"},
		"public.items@duck": {"differing:2", "differing:8", "differing:9", "extra:0", "missing:40"},
		"public.pairs@pg":   {"differing:b,2", "missing:Z,5"},
		"public.pairs@duck": {"extra:c,1"},
	}
	for _, chunk := range []int{3, 1000} {
		check(t, run(chunk), want, keys)
	}

	// The differing keys become backfills of those keys at that
	// destination only; extra rows are not backfilled.
	res := run(1000)
	ins, err := Backfills(9, res["public.items@pg"])
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Table != "public.items" || !reflect.DeepEqual(ins[0].DestinationIDs, []int64{1}) ||
		len(ins[0].Filters) != 1 || ins[0].Filters[0].Op != "in" || ins[0].Filters[0].Column != "id" {
		t.Fatalf("backfills %+v", ins)
	}
	var vals []string
	if err := jsonUnmarshal(ins[0].Filters[0].Value, &vals); err != nil {
		t.Fatal(err)
	}
	sort.Strings(vals)
	if !reflect.DeepEqual(vals, []string{"17", "30", "5"}) {
		t.Fatalf("backfill keys %v", vals)
	}
	ins, err = Backfills(9, res["public.pairs@pg"])
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 2 || len(ins[0].Filters) != 2 || ins[0].Filters[0].Op != "=" {
		t.Fatalf("composite key backfills %+v", ins)
	}
}
