package duckdb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// itemCols and ev are the shared driver-test table and event builder.
var itemCols = cdctest.ItemColumns

type ev = cdctest.Events

type env struct {
	t    *testing.T
	path string
	drv  *Driver
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEnv makes a driver writing a new file in a directory that does not
// exist yet; settings override the config's JSON fields.
func newEnv(t *testing.T, settings map[string]any) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "not", "yet", "dest.duckdb")
	conf := map[string]any{"path": path, "schema": "sink", "release_after": "20ms"}
	for k, v := range settings {
		conf[k] = v
	}
	raw, _ := json.Marshal(conf)
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	d := New(cfg, quietLog())
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close driver: %v", err)
		}
	})
	return &env{t: t, path: path, drv: d}
}

// apply collapses changes into one batch and applies it.
func (e *env) apply(changes ...contracts.Change) error {
	e.t.Helper()
	batches, err := cdc.Collapse(changes)
	if err != nil {
		e.t.Fatalf("collapse: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return e.drv.Apply(ctx, batches)
}

func (e *env) mustApply(changes ...contracts.Change) {
	e.t.Helper()
	if err := e.apply(changes...); err != nil {
		e.t.Fatalf("apply: %v", err)
	}
}

// db opens the file in this process. While the driver holds the file,
// DuckDB hands both the same database instance.
func (e *env) db() *sql.DB {
	e.t.Helper()
	c, err := duckdb.NewConnector(e.path, func(ex driver.ExecerContext) error {
		_, err := ex.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil)
		return err
	})
	if err != nil {
		e.t.Fatalf("open %s: %v", e.path, err)
	}
	return sql.OpenDB(c)
}

// rows returns query's rows, each as its columns cast to text joined by
// "|" (NULL as <null>).
func (e *env) rows(query string, args ...any) []string {
	e.t.Helper()
	db := e.db()
	defer db.Close()
	// DuckDB keeps the subquery's order through a plain projection.
	rs, err := db.Query(`SELECT COLUMNS(*)::VARCHAR FROM (`+query+`)`, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			e.t.Fatalf("%s: %v", query, err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = "<null>"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rs.Err(); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return out
}

func (e *env) expect(query string, want ...string) {
	e.t.Helper()
	got := e.rows(query)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		e.t.Errorf("%s\n got %q\nwant %q", query, got, want)
	}
}

const items = `SELECT id, name, big FROM sink.items ORDER BY id`

func TestDriver(t *testing.T) {
	t.Parallel()
	it := ev{Table: "items", Columns: itemCols}

	t.Run("inserts updates deletes", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"), it.Ins(10, 3, "c"))
		e.expect(items, "1|a|<null>", "2|b|<null>", "3|c|<null>")
		e.mustApply(it.Upd(20, 2, "b2"), it.Del(21, 3), it.Ins(22, 4, "d"))
		e.expect(items, "1|a|<null>", "2|b2|<null>", "4|d|<null>")
		e.expect(`SELECT id, _rosetta_lsn, _rosetta_seq FROM sink.items ORDER BY id`, "1|10|1", "2|20|1", "4|22|1")
		e.expect(`SELECT unnest(constraint_column_names) FROM duckdb_constraints()
			WHERE schema_name = 'sink' AND table_name = 'items' AND constraint_type = 'PRIMARY KEY'`, "id")
		e.expect(`SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'sink' AND table_name = 'items' ORDER BY column_index`,
			"id|INTEGER", "name|VARCHAR", "big|VARCHAR", "_rosetta_lsn|BIGINT", "_rosetta_seq|BIGINT", "_rosetta_colv|MAP(VARCHAR, BIGINT[])")
	})

	t.Run("key change keeps unchanged values", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		e.mustApply(it.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":"kept"}`),
			it.Change(contracts.OpCreate, 10, 2, `{"id":7}`, ``, `{"id":7,"name":"z","big":"seven"}`))
		// 1 -> 2 in one batch, 2 -> 3 then 7 -> 8 -> 9 in the next, with big unchanged every time.
		e.mustApply(it.Change(contracts.OpUpdate, 20, 1, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"b"}`, "big"))
		e.expect(items, "2|b|kept", "7|z|seven")
		e.mustApply(
			it.Change(contracts.OpUpdate, 30, 1, `{"id":3}`, `{"id":2}`, `{"id":3,"name":"c"}`, "big"),
			it.Change(contracts.OpUpdate, 30, 2, `{"id":8}`, `{"id":7}`, `{"id":8,"name":"y"}`, "big"),
			it.Change(contracts.OpUpdate, 30, 3, `{"id":9}`, `{"id":8}`, `{"id":9,"name":"x"}`, "big"),
		)
		e.expect(items, "3|c|kept", "9|x|seven")
		// The moved-away keys are tombstoned: their old rows do not come back.
		e.mustApply(it.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":"kept"}`))
		e.expect(items, "3|c|kept", "9|x|seven")
	})

	t.Run("composite key", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		ck := ev{Table: "pairs", Columns: []contracts.Column{
			{Name: "v", Type: "text", BaseType: "text"},
			{Name: "tenant", Type: "text", BaseType: "text", Key: true},
			{Name: "n", Type: "bigint", BaseType: "bigint", Key: true},
		}}
		e.mustApply(
			ck.Change(contracts.OpCreate, 10, 1, `{"n":1,"tenant":"a"}`, ``, `{"tenant":"a","n":1,"v":"a1"}`),
			ck.Change(contracts.OpCreate, 10, 2, `{"n":1,"tenant":"b"}`, ``, `{"tenant":"b","n":1,"v":"b1"}`),
			ck.Change(contracts.OpCreate, 10, 3, `{"n":2,"tenant":"a"}`, ``, `{"tenant":"a","n":2,"v":"a2"}`),
		)
		e.mustApply(
			ck.Change(contracts.OpUpdate, 20, 1, `{"n":1,"tenant":"b"}`, ``, `{"tenant":"b","n":1,"v":"b1'"}`),
			ck.Change(contracts.OpDelete, 20, 2, `{"n":1,"tenant":"a"}`, ``, ``),
		)
		e.expect(`SELECT tenant, n, v FROM sink.pairs ORDER BY tenant, n`, "a|2|a2", "b|1|b1'")
		e.expect(`SELECT unnest(constraint_column_names) AS k FROM duckdb_constraints()
			WHERE schema_name = 'sink' AND table_name = 'pairs' AND constraint_type = 'PRIMARY KEY' ORDER BY k`, "n", "tenant")
		// An older insert of the deleted composite key stays deleted.
		e.mustApply(ck.Change(contracts.OpCreate, 15, 1, `{"n":1,"tenant":"a"}`, ``, `{"tenant":"a","n":1,"v":"old"}`))
		e.expect(`SELECT tenant, n, v FROM sink.pairs ORDER BY tenant, n`, "a|2|a2", "b|1|b1'")
	})

	t.Run("unchanged toast value of 1MB is kept", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		big := strings.Repeat("0123456789abcdef\t\\\n'\"é", 1<<20/22+1)
		bigJSON, _ := json.Marshal(big)
		e.mustApply(it.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":`+string(bigJSON)+`}`))
		e.mustApply(it.Upd(20, 1, "renamed"))
		e.mustApply(it.Upd(30, 1, "again"), it.Change(contracts.OpUpdate, 30, 2, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"moved"}`, "big"))
		sum := sha256.Sum256([]byte(big))
		e.expect(`SELECT id, name, strlen(big), sha256(big) FROM sink.items`,
			fmt.Sprintf("2|moved|%d|%s", len(big), hex.EncodeToString(sum[:])))
	})

	t.Run("redelivery converges and older versions never win", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		first := []contracts.Change{it.Ins(10, 1, "a"), it.Ins(10, 2, "b"), it.Ins(10, 3, "c")}
		second := []contracts.Change{it.Upd(20, 1, "a2"), it.Del(21, 2), it.Ins(22, 4, "d")}
		third := []contracts.Change{it.Del(30, 4), it.Ins(31, 2, "b-again")}
		for _, b := range [][]contracts.Change{first, second, second, first, third, second, first, third} {
			e.mustApply(b...)
		}
		e.expect(items, "1|a2|<null>", "2|b-again|<null>", "3|c|<null>")
		// Tombstones: 4 is deleted; 2's tombstone went when it came back.
		e.expect(`SELECT id, _rosetta_lsn FROM _rosetta.`+ident(tombstoneTableName("sink", "items"))+` ORDER BY id`, "4|30")
	})

	t.Run("same batch applied twice converges", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		batch := []contracts.Change{it.Ins(10, 1, "a"), it.Ins(10, 2, "b"), it.Upd(11, 1, "a2"), it.Del(12, 2), it.Ins(13, 3, "c")}
		e.mustApply(batch...)
		once := e.rows(`SELECT * FROM sink.items ORDER BY id`)
		e.mustApply(batch...)
		e.expect(`SELECT * FROM sink.items ORDER BY id`, once...)
		e.expect(items, "1|a2|<null>", "3|c|<null>")
	})

	t.Run("older change after a newer one is ignored", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		e.mustApply(it.Ins(20, 1, "new"), it.Ins(20, 2, "to delete"))
		e.mustApply(it.Del(30, 2))
		// Older changes of both keys arrive late (a DLQ replay, a slow
		// redelivery, a snapshot row read before the changes).
		e.mustApply(it.Ins(10, 1, "old"), it.Upd(11, 2, "old update"), it.Ins(12, 2, "old insert"))
		e.mustApply(it.Change(contracts.OpRead, 5, 1, `{"id":2}`, ``, `{"id":2,"name":"snapshot","big":null}`))
		e.mustApply(it.Del(15, 1))
		e.expect(items, "1|new|<null>")
		// Same LSN, earlier position in the transaction: older too.
		e.mustApply(it.Change(contracts.OpUpdate, 20, 0, `{"id":1}`, ``, `{"id":1,"name":"seq 0"}`, "big"))
		e.expect(items, "1|new|<null>")
	})

	t.Run("truncate", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
		e.mustApply(it.Ins(11, 9, "before truncate"), it.Truncate(20), it.Ins(21, 3, "c"), it.Ins(21, 1, "a again"))
		e.expect(items, "1|a again|<null>", "3|c|<null>")
		// Redelivery of everything before and including the truncate.
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
		e.expect(items, "1|a again|<null>", "3|c|<null>")
		e.mustApply(it.Truncate(20))
		e.expect(items, "1|a again|<null>", "3|c|<null>")
		e.mustApply(it.Ins(11, 9, "before truncate"), it.Truncate(20), it.Ins(21, 3, "c"))
		e.expect(items, "1|a again|<null>", "3|c|<null>")
		e.expect(`SELECT truncate_lsn, truncate_seq FROM _rosetta.tables WHERE schema_name = 'sink' AND table_name = 'items'`, "20|1")
		// A lone truncate (no columns) of a table never created is a no-op.
		e.mustApply(ev{Table: "never"}.Truncate(40))
		e.expect(`SELECT count(*) FROM duckdb_tables() WHERE table_name = 'never'`, "0")
		// A lone truncate of an existing table.
		e.mustApply(ev{Table: "items"}.Truncate(50))
		e.expect(items)
		e.mustApply(it.Ins(45, 5, "older than the truncate"), it.Ins(55, 6, "newer"))
		e.expect(items, "6|newer|<null>")
	})

	t.Run("column added with a default fills the rows already there", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
		wide := ev{Table: "items", Columns: append(append([]contracts.Column{}, itemCols...),
			contracts.Column{Name: "price", Type: "numeric(10,2)", BaseType: "numeric(10,2)", ExistingValue: `"7.50"`},
			contracts.Column{Name: "note", Type: "text", BaseType: "text", ExistingValue: `"it's \\ \"q\""`},
			contracts.Column{Name: "flag", Type: "boolean", BaseType: "boolean", ExistingValue: `true`},
			contracts.Column{Name: "n", Type: "integer", BaseType: "integer", ExistingValue: `3`},
			contracts.Column{Name: "at", Type: "timestamp with time zone", BaseType: "timestamp with time zone", ExistingValue: `"2024-01-02 03:04:05.5+00"`},
			contracts.Column{Name: "iv", Type: "interval", BaseType: "interval", ExistingValue: `"1 mon -2 days +03:00:00"`},
			contracts.Column{Name: "bin", Type: "bytea", BaseType: "bytea", ExistingValue: `"\\x00ff"`},
			contracts.Column{Name: "plain", Type: "text", BaseType: "text"})}
		// One batch: a row written before the ALTER, then rows after it.
		e.mustApply(it.Ins(20, 3, "c"),
			wide.Change(contracts.OpCreate, 30, 1, `{"id":4}`, ``,
				`{"id":4,"name":"d","price":"1.25","note":null,"flag":false,"n":null,"at":null,"iv":"00:00:01","bin":null,"plain":"p"}`),
			wide.Change(contracts.OpUpdate, 30, 2, `{"id":2}`, ``,
				`{"id":2,"name":"b2","price":null,"note":"x","flag":null,"n":1,"at":null,"iv":null,"bin":"\\x01","plain":null}`))
		const q = `SELECT id, name, price, note, flag, n, "at", iv, hex(bin), plain FROM sink.items ORDER BY id`
		old := `7.50|it's \ "q"|true|3|2024-01-02 03:04:05.5+00|1 month -2 days 03:00:00|00FF|<null>`
		e.expect(q, "1|a|"+old, "2|b2|<null>|x|<null>|1|<null>|<null>|01|<null>", "3|c|"+old,
			"4|d|1.25|<null>|false|<null>|<null>|00:00:01|<null>|p")
		// Later rows carry their own values.
		e.mustApply(wide.Change(contracts.OpCreate, 40, 1, `{"id":5}`, ``, `{"id":5,"name":"e","plain":null}`))
		e.expect(`SELECT id, price, note, flag, n, "at", iv, bin FROM sink.items WHERE id = 5`, "5|<null>|<null>|<null>|<null>|<null>|<null>|<null>")
	})

	t.Run("a widened source column widens the destination column", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		narrow := ev{Table: "wide", Columns: []contracts.Column{
			{Name: "id", Type: "integer", BaseType: "integer", Key: true},
			{Name: "n", Type: "numeric(10,1)", BaseType: "numeric(10,1)"},
			{Name: "i", Type: "integer", BaseType: "integer"},
		}}
		e.mustApply(narrow.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"n":"1.5","i":7}`))
		wide := ev{Table: "wide", Columns: []contracts.Column{
			{Name: "id", Type: "integer", BaseType: "integer", Key: true},
			{Name: "n", Type: "numeric(12,3)", BaseType: "numeric(12,3)"},
			{Name: "i", Type: "bigint", BaseType: "bigint"},
		}}
		e.mustApply(wide.Change(contracts.OpCreate, 20, 1, `{"id":2}`, ``, `{"id":2,"n":"123456789.005","i":9223372036854775807}`))
		e.expect(`SELECT id, n, i FROM sink.wide ORDER BY id`, "1|1.500|7", "2|123456789.005|9223372036854775807")
		e.expect(`SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) FROM duckdb_columns()
			WHERE schema_name = 'sink' AND table_name = 'wide' AND column_name NOT LIKE '\_rosetta%' ESCAPE '\'`,
			"id INTEGER, n DECIMAL(12,3), i BIGINT")
	})

	t.Run("columns are added", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		e.mustApply(it.Ins(10, 1, "a"))
		wide := ev{Table: "items", Columns: append(append([]contracts.Column{}, itemCols...),
			contracts.Column{Name: "price", Type: "numeric(10,2)", BaseType: "numeric(10,2)"},
			contracts.Column{Name: "Mixed Case", Type: "public.mood", BaseType: "text"})}
		e.mustApply(wide.Change(contracts.OpCreate, 20, 1, `{"id":2}`, ``, `{"id":2,"name":"b","price":"12.50","Mixed Case":"happy"}`))
		e.expect(`SELECT id, name, price, "Mixed Case" FROM sink.items ORDER BY id`, "1|a|<null>|<null>", "2|b|12.50|happy")
		e.expect(`SELECT data_type FROM duckdb_columns() WHERE schema_name = 'sink' AND table_name = 'items' AND column_name = 'price'`,
			"DECIMAL(10,2)")
		// A table changed behind the driver's back: the cached shape is
		// refreshed after the failure, and the retry succeeds.
		db := e.db()
		if _, err := db.Exec(`ALTER TABLE sink.items DROP COLUMN price`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		next := wide.Change(contracts.OpCreate, 30, 1, `{"id":3}`, ``, `{"id":3,"name":"c","price":"1"}`)
		if err := e.apply(next); err != nil {
			if sinkrunner.IsPermanent(err) {
				t.Fatalf("stale shape gave a permanent error: %v", err)
			}
			if err = e.apply(next); err != nil {
				t.Fatalf("apply after refresh: %v", err)
			}
		}
		e.expect(`SELECT id, price FROM sink.items WHERE id = 3`, "3|1.00")
	})

	t.Run("bad data is a permanent error and nothing is applied", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		e.mustApply(it.Ins(10, 1, "a"))
		err := e.apply(it.Ins(20, 2, "b"), it.Change(contracts.OpCreate, 20, 2, `{"id":"not a number"}`, ``, `{"id":"not a number"}`))
		if err == nil || !sinkrunner.IsPermanent(err) {
			t.Fatalf("apply of invalid integer: %v; want a permanent error", err)
		}
		e.expect(items, "1|a|<null>")
		// The driver recovers: a good batch applies on the same driver.
		e.mustApply(it.Ins(30, 3, "c"))
		e.expect(items, "1|a|<null>", "3|c|<null>")
		for _, col := range []contracts.Column{{Name: "_rosetta_x", BaseType: "text"}, {Name: "_ROSETTA_Y", BaseType: "text"}, {Name: "NAME", BaseType: "text"}} {
			bad := ev{Table: "items", Columns: append(append([]contracts.Column{}, itemCols...), col)}
			if err := e.apply(bad.Ins(40, 4, "d")); !sinkrunner.IsPermanent(err) {
				t.Errorf("column %q: %v; want a permanent error", col.Name, err)
			}
		}
		// A table whose name differs only in case is the same table.
		if err := e.apply(ev{Table: "Items", Columns: itemCols}.Ins(40, 4, "d")); !sinkrunner.IsPermanent(err) {
			t.Errorf("table Items next to items: %v; want a permanent error", err)
		}
		e.expect(items, "1|a|<null>", "3|c|<null>")
	})

	t.Run("tables in several schemas and tables of one batch", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, map[string]any{"schema": "Other Schema"})
		other := ev{Table: "Odd \"name\".x", Columns: itemCols}
		e.mustApply(it.Ins(10, 1, "a"), other.Ins(10, 2, "b"), it.Ins(11, 3, "c"))
		e.expect(`SELECT id, name FROM "Other Schema".items ORDER BY id`, "1|a", "3|c")
		e.expect(`SELECT id, name FROM "Other Schema"."Odd ""name"".x"`, "2|b")
		e.expect(`SELECT count(*) FROM _rosetta.tables WHERE schema_name = 'Other Schema'`, "2")
	})

	t.Run("default schema main", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, map[string]any{"schema": ""})
		e.mustApply(it.Ins(10, 1, "a"))
		e.expect(`SELECT id, name FROM main.items`, "1|a")
	})
}

// TestTypesRoundTrip writes one row of every mapped type from its
// PostgreSQL text form and reads the values back typed.
func TestTypesRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	type col struct {
		name, base, json string
		read             string // SQL reading the value back as text
		want             string
	}
	cols := []col{
		{"id", "bigint", `9007199254740993`, `id`, "9007199254740993"},
		{"i2", "smallint", `-32768`, `i2`, "-32768"},
		{"i4", "integer", `2147483647`, `i4`, "2147483647"},
		{"dec", "numeric(38,10)", `"-1234567890123456789012345678.0123456789"`, `dec`, "-1234567890123456789012345678.0123456789"},
		{"dec0", "numeric(5,0)", `"12345"`, `dec0`, "12345"},
		{"num", "numeric", `"123456789012345678901234567890123456789012.123456789"`, `num`, "123456789012345678901234567890123456789012.123456789"},
		{"numnan", "numeric", `"NaN"`, `numnan`, "NaN"},
		{"big_dec", "numeric(50,2)", `"1.50"`, `big_dec`, "1.50"},
		{"r", "real", `"1.1"`, `r = 1.1::FLOAT`, "true"},
		{"rinf", "real", `"-Infinity"`, `rinf = '-inf'::FLOAT`, "true"},
		{"d", "double precision", `"0.1"`, `d = 0.1::DOUBLE`, "true"},
		{"dmax", "double precision", `"1.7976931348623157e+308"`, `dmax = 1.7976931348623157e+308`, "true"},
		{"dnan", "double precision", `"NaN"`, `isnan(dnan)`, "true"},
		{"dinf", "double precision", `"Infinity"`, `dinf = 'inf'::DOUBLE`, "true"},
		{"b", "boolean", `true`, `b`, "true"},
		{"t", "text", `"tab\there\nnew line \\N back\\slash \r 'quote' \"dq\" 🦆"`, `t`, "tab\there\nnew line \\N back\\slash \r 'quote' \"dq\" 🦆"},
		{"vc", "character varying(20)", `"short"`, `vc`, "short"},
		{"ch", "character(5)", `"ab   "`, `ch`, "ab   "},
		{"raw", "bytea", `"\\xdeadbeef00ff"`, `hex(raw)`, "DEADBEEF00FF"},
		{"dt", "date", `"2024-02-29"`, `dt`, "2024-02-29"},
		{"dtbc", "date", `"0044-03-15 BC"`, `dtbc`, "0044-03-15 (BC)"},
		{"dtinf", "date", `"infinity"`, `dtinf`, "infinity"},
		{"ts", "timestamp(3) without time zone", `"2024-01-02 03:04:05.123"`, `ts`, "2024-01-02 03:04:05.123"},
		{"tsbc", "timestamp without time zone", `"4714-11-24 00:00:00 BC"`, `tsbc`, "4714-11-24 (BC) 00:00:00"},
		{"tsninf", "timestamp without time zone", `"-infinity"`, `tsninf`, "-infinity"},
		{"tstz", "timestamp with time zone", `"2024-01-02 03:04:05.123456+05:30"`, `epoch_us(tstz)`, "1704144845123456"},
		{"tstzinf", "timestamp with time zone", `"infinity"`, `tstzinf`, "infinity"},
		{"tm", "time without time zone", `"24:00:00"`, `tm`, "24:00:00"},
		{"tmtz", "time with time zone", `"03:04:05.5+05:30"`, `tmtz`, "03:04:05.5+05:30"},
		{"iv", "interval", `"1 year 2 mons -3 days +04:05:06.789"`,
			`datepart('month', iv) || ' ' || datepart('year', iv) || ' ' || datepart('day', iv) || ' ' || datepart('microseconds', iv) || ' ' || datepart('hour', iv) || ':' || datepart('minute', iv)`,
			"2 1 -3 6789000 4:5"},
		{"u", "uuid", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, `u`, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"j", "json", `"{\"b\": 1, \"a\":  [1, \"x\", 1.0000000000000000001]}"`, `j`, `{"b": 1, "a":  [1, "x", 1.0000000000000000001]}`},
		{"jb", "jsonb", `"{\"a\": [1, \"x\"]}"`, `jb->>'$.a[1]'`, "x"},
		{"arr", "text[]", `"{a,\"b c\",NULL}"`, `arr`, `{a,"b c",NULL}`},
		{"rng", "int4range", `"[1,10)"`, `rng`, "[1,10)"},
		{"pt", "point", `"(1.5,2)"`, `pt`, "(1.5,2)"},
		{"ip", "inet", `"192.168.0.1/24"`, `ip`, "192.168.0.1/24"},
		{"bits", "bit varying(8)", `"1011"`, `bits`, "1011"},
		{"enum", "text", `"happy"`, `enum`, "happy"},
		{"evil", "int); DROP TABLE x; --", `"42"`, `evil`, "42"},
		{"nul", "timestamp with time zone", `null`, `nul`, "<null>"},
	}
	var (
		columns []contracts.Column
		after   []string
		reads   []string
		want    []string
	)
	for _, c := range cols {
		columns = append(columns, contracts.Column{Name: c.name, Type: c.base, BaseType: c.base, Key: c.name == "id"})
		after = append(after, fmt.Sprintf("%q:%s", c.name, c.json))
		reads = append(reads, c.read)
		want = append(want, c.want)
	}
	ty := ev{Table: "typed", Columns: columns}
	e.mustApply(ty.Change(contracts.OpCreate, 10, 1, `{"id":9007199254740993}`, ``, "{"+strings.Join(after, ",")+"}"))
	got := e.rows(`SELECT ` + strings.Join(reads, ", ") + ` FROM sink.typed`)
	if len(got) != 1 {
		t.Fatalf("rows: %q", got)
	}
	for i, v := range strings.Split(got[0], "|") {
		if v != want[i] {
			t.Errorf("column %s (%s): read %q, want %q", cols[i].name, cols[i].base, v, want[i])
		}
	}
	e.expect(`SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'sink' AND table_name = 'typed'
		AND column_name IN ('dec', 'num', 'big_dec', 'r', 'raw', 'tstz', 'tmtz', 'iv', 'u', 'j', 'jb', 'arr', 'evil') ORDER BY column_name`,
		"arr|VARCHAR", "big_dec|VARCHAR", "dec|DECIMAL(38,10)", "evil|VARCHAR", "iv|INTERVAL", "j|JSON", "jb|JSON", "num|VARCHAR",
		"r|FLOAT", "raw|BLOB", "tmtz|TIME WITH TIME ZONE", "tstz|TIMESTAMP WITH TIME ZONE", "u|UUID")
	// Typed reads through the Go driver give the same values.
	db := e.db()
	defer db.Close()
	var (
		r   float32
		raw []byte
		ts  time.Time
		iv  duckdb.Interval
	)
	if err := db.QueryRow(`SELECT r, raw, tstz, iv FROM sink.typed`).Scan(&r, &raw, &ts, &iv); err != nil {
		t.Fatal(err)
	}
	if r != float32(1.1) || hex.EncodeToString(raw) != "deadbeef00ff" || !ts.Equal(time.Date(2024, 1, 1, 21, 34, 5, 123456000, time.UTC)) ||
		iv != (duckdb.Interval{Months: 14, Days: -3, Micros: 14706789000}) {
		t.Errorf("typed read: %v %x %v %+v", r, raw, ts, iv)
	}
}

// TestUnrepresentableValues: values DuckDB cannot hold exactly are a
// permanent error naming the table, column and value, and nothing of the
// batch is applied.
func TestUnrepresentableValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	cols := []contracts.Column{
		{Name: "id", Type: "integer", BaseType: "integer", Key: true},
		{Name: "price", Type: "numeric(6,2)", BaseType: "numeric(6,2)"},
		{Name: "at", Type: "timestamp without time zone", BaseType: "timestamp without time zone"},
		{Name: "span", Type: "interval", BaseType: "interval"},
	}
	tb := ev{Table: "odd", Columns: cols}
	e.mustApply(tb.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"price":"1.00","at":"2024-01-01 00:00:00","span":"1 day"}`))
	for _, tt := range []struct{ after, want string }{
		{`{"id":2,"price":"NaN"}`, `column "price" (DECIMAL(6,2)), row with key id="2": value "NaN"`},
		{`{"id":2,"price":"1.005"}`, `would round`},
		{`{"id":2,"price":"12345.00"}`, `more than 4 digits before the point`},
		{`{"id":2,"at":"294276-12-31 23:59:59.999999"}`, `beyond DuckDB's timestamp range`},
		{`{"id":2,"span":"infinity"}`, `infinite interval`},
	} {
		err := e.apply(tb.Change(contracts.OpCreate, 20, 1, `{"id":3}`, ``, `{"id":3,"price":"3.00"}`), tb.Change(contracts.OpCreate, 20, 2, `{"id":2}`, ``, tt.after))
		if err == nil || !sinkrunner.IsPermanent(err) {
			t.Errorf("%s: %v; want a permanent error", tt.after, err)
			continue
		}
		if !strings.Contains(err.Error(), "app.odd") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q does not name table app.odd and say %q", tt.after, err, tt.want)
		}
		t.Log(err)
	}
	e.expect(`SELECT id, price, "at", "span" FROM sink.odd`, "1|1.00|2024-01-01 00:00:00|1 day")
}
