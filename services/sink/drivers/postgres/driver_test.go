package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// itemCols and ev are the shared driver-test table and event builder.
var itemCols = cdctest.ItemColumns

type ev = cdctest.Events

type env struct {
	t    *testing.T
	pg   *testkit.Postgres
	db   string
	conn *pgx.Conn
	drv  *Driver
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T, pg *testkit.Postgres, schema string) *env {
	t.Helper()
	db := pg.CreateDatabase(t, "dest")
	raw, _ := json.Marshal(map[string]any{"host": pg.Host(), "port": pg.Port, "database": db, "user": "postgres",
		"schema": schema, "sslmode": "disable"})
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	d := New(cfg, quietLog())
	t.Cleanup(func() { d.Close() })
	return &env{t: t, pg: pg, db: db, conn: pg.Connect(t, db), drv: d}
}

// apply collapses changes into one batch and applies it.
func (e *env) apply(changes ...contracts.Change) error {
	e.t.Helper()
	batches, err := cdc.Collapse(changes)
	if err != nil {
		e.t.Fatalf("collapse: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.drv.Apply(ctx, batches)
}

func (e *env) mustApply(changes ...contracts.Change) {
	e.t.Helper()
	if err := e.apply(changes...); err != nil {
		e.t.Fatalf("apply: %v", err)
	}
}

// rows returns query's rows, each as its columns' text joined by "|".
func (e *env) rows(query string) []string {
	e.t.Helper()
	rs, err := e.conn.Query(context.Background(), query, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		vals := rs.RawValues()
		parts := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				parts[i] = "<null>"
			} else {
				parts[i] = string(v)
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

const items = `SELECT id, name, big FROM "sink"."items" ORDER BY id`

func TestDriver(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	it := ev{Table: "items", Columns: itemCols}

	t.Run("inserts updates deletes", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"), it.Ins(10, 3, "c"))
		e.expect(items, "1|a|<null>", "2|b|<null>", "3|c|<null>")
		e.mustApply(it.Upd(20, 2, "b2"), it.Del(21, 3), it.Ins(22, 4, "d"))
		e.expect(items, "1|a|<null>", "2|b2|<null>", "4|d|<null>")
		e.expect(`SELECT id, _rosetta_lsn, _rosetta_seq FROM sink.items ORDER BY id`,
			"1|10|1", "2|20|1", "4|22|1")
		e.expect(`SELECT k.attname FROM pg_index i JOIN pg_attribute k ON k.attrelid = i.indrelid AND k.attnum = ANY(i.indkey)
			WHERE i.indrelid = 'sink.items'::regclass AND i.indisprimary`, "id")
	})

	t.Run("key change keeps unchanged values", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		e.mustApply(it.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":"kept"}`),
			it.Change(contracts.OpCreate, 10, 2, `{"id":7}`, ``, `{"id":7,"name":"z","big":"seven"}`))
		// 1 -> 2 in one batch, 2 -> 3 then 7 -> 8 in the next, with big unchanged every time.
		e.mustApply(it.Change(contracts.OpUpdate, 20, 1, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"b"}`, "big"))
		e.expect(items, "2|b|kept", "7|z|seven")
		e.mustApply(
			it.Change(contracts.OpUpdate, 30, 1, `{"id":3}`, `{"id":2}`, `{"id":3,"name":"c"}`, "big"),
			it.Change(contracts.OpUpdate, 30, 2, `{"id":8}`, `{"id":7}`, `{"id":8,"name":"y"}`, "big"),
			it.Change(contracts.OpUpdate, 30, 3, `{"id":9}`, `{"id":8}`, `{"id":9,"name":"x"}`, "big"),
		)
		e.expect(items, "3|c|kept", "9|x|seven")
	})

	t.Run("composite key", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
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
		e.expect(`SELECT k.attname FROM pg_index i JOIN pg_attribute k ON k.attrelid = i.indrelid AND k.attnum = ANY(i.indkey)
			WHERE i.indrelid = 'sink.pairs'::regclass AND i.indisprimary ORDER BY k.attname`, "n", "tenant")
	})

	t.Run("unchanged toast value of 1MB is kept", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		big := strings.Repeat("0123456789abcdef\t\\\n", 1<<20/19+1)
		bigJSON, _ := json.Marshal(big)
		e.mustApply(it.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":`+string(bigJSON)+`}`))
		e.mustApply(it.Upd(20, 1, "renamed"))
		e.mustApply(it.Upd(30, 1, "again"), it.Change(contracts.OpUpdate, 30, 2, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"moved"}`, "big"))
		sum := sha256.Sum256([]byte(big))
		e.expect(`SELECT id, name, length(big), encode(sha256(convert_to(big, 'UTF8')), 'hex') FROM sink.items`,
			fmt.Sprintf("2|moved|%d|%s", len(big), hex.EncodeToString(sum[:])))
	})

	t.Run("redelivery converges and older versions never win", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		first := []contracts.Change{it.Ins(10, 1, "a"), it.Ins(10, 2, "b"), it.Ins(10, 3, "c")}
		second := []contracts.Change{it.Upd(20, 1, "a2"), it.Del(21, 2), it.Ins(22, 4, "d")}
		third := []contracts.Change{it.Del(30, 4), it.Ins(31, 2, "b-again")}
		for _, b := range [][]contracts.Change{first, second, second, first, third, second, first, third} {
			e.mustApply(b...)
		}
		e.expect(items, "1|a2|<null>", "2|b-again|<null>", "3|c|<null>")
		// Tombstones: 4 is deleted; 2's tombstone went when it came back.
		tomb := tombstoneTableName("sink", "items")
		e.expect(`SELECT id, _rosetta_lsn FROM _rosetta.`+pgx.Identifier{tomb}.Sanitize()+` ORDER BY id`, "4|30")
	})

	t.Run("older change after a newer one is ignored", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		e.mustApply(it.Ins(20, 1, "new"), it.Ins(20, 2, "to delete"))
		e.mustApply(it.Del(30, 2))
		// Older changes of both keys arrive late (a DLQ replay, a slow
		// redelivery, a snapshot row read before the changes).
		e.mustApply(it.Ins(10, 1, "old"), it.Upd(11, 2, "old update"), it.Ins(12, 2, "old insert"))
		e.mustApply(it.Change(contracts.OpRead, 5, 1, `{"id":2}`, ``, `{"id":2,"name":"snapshot","big":null}`))
		e.mustApply(it.Del(15, 1))
		e.expect(items, "1|new|<null>")
	})

	t.Run("truncate", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
		e.mustApply(it.Ins(11, 9, "before truncate"), it.Truncate(20), it.Ins(21, 3, "c"))
		e.expect(items, "3|c|<null>")
		// Redelivery of everything before and including the truncate.
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
		e.expect(items, "3|c|<null>")
		e.mustApply(it.Truncate(20))
		e.expect(items, "3|c|<null>")
		e.mustApply(it.Ins(11, 9, "before truncate"), it.Truncate(20), it.Ins(21, 3, "c"))
		e.expect(items, "3|c|<null>")
		e.expect(`SELECT truncate_lsn, truncate_seq FROM _rosetta.tables WHERE schema_name = 'sink' AND table_name = 'items'`, "20|1")
		// A lone truncate (no columns) of a table never created is a no-op.
		other := ev{Table: "never", Columns: nil}
		e.mustApply(other.Truncate(40))
		e.expect(`SELECT to_regclass('sink.never') IS NULL`, "t")
		// A lone truncate of an existing table.
		e.mustApply(ev{Table: "items"}.Truncate(50))
		e.expect(items)
	})

	t.Run("columns are added", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		e.mustApply(it.Ins(10, 1, "a"))
		wide := ev{Table: "items", Columns: append(append([]contracts.Column{}, itemCols...),
			contracts.Column{Name: "price", Type: "numeric(10,2)", BaseType: "numeric(10,2)"},
			contracts.Column{Name: "Mixed Case", Type: "public.mood", BaseType: "text"})}
		e.mustApply(wide.Change(contracts.OpCreate, 20, 1, `{"id":2}`, ``, `{"id":2,"name":"b","price":"12.50","Mixed Case":"happy"}`))
		e.expect(`SELECT id, name, price, "Mixed Case" FROM sink.items ORDER BY id`, "1|a|<null>|<null>", "2|b|12.50|happy")
		e.expect(`SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'sink.items'::regclass AND attname = 'price'`,
			"numeric(10,2)")
		// A table changed behind the driver's back: the cached shape is
		// refreshed after the failure.
		if _, err := e.conn.Exec(context.Background(), `ALTER TABLE sink.items DROP COLUMN price`); err != nil {
			t.Fatal(err)
		}
		err := e.apply(wide.Change(contracts.OpCreate, 30, 1, `{"id":3}`, ``, `{"id":3,"name":"c","price":"1"}`))
		if err != nil {
			if err = e.apply(wide.Change(contracts.OpCreate, 30, 1, `{"id":3}`, ``, `{"id":3,"name":"c","price":"1"}`)); err != nil {
				t.Fatalf("apply after refresh: %v", err)
			}
		}
		e.expect(`SELECT id, price FROM sink.items WHERE id = 3`, "3|1.00")
	})

	t.Run("column added with a default fills the rows already there", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
		wide := ev{Table: "items", Columns: append(append([]contracts.Column{}, itemCols...),
			contracts.Column{Name: "price", Type: "numeric(10,2)", BaseType: "numeric(10,2)", ExistingValue: `"7.50"`},
			contracts.Column{Name: "note", Type: "text", BaseType: "text", ExistingValue: `"it's \\ \"q\""`},
			contracts.Column{Name: "flag", Type: "boolean", BaseType: "boolean", ExistingValue: `true`},
			contracts.Column{Name: "n", Type: "integer", BaseType: "integer", ExistingValue: `3`},
			contracts.Column{Name: "plain", Type: "text", BaseType: "text"})}
		// One batch: a row written before the ALTER, then rows after it.
		e.mustApply(it.Ins(20, 3, "c"),
			wide.Change(contracts.OpCreate, 30, 1, `{"id":4}`, ``, `{"id":4,"name":"d","price":"1.25","note":null,"flag":false,"n":null,"plain":"p"}`),
			wide.Change(contracts.OpUpdate, 30, 2, `{"id":2}`, ``, `{"id":2,"name":"b2","price":null,"note":"x","flag":null,"n":1,"plain":null}`))
		const q = `SELECT id, name, price, note, flag, n, plain FROM sink.items ORDER BY id`
		e.expect(q, `1|a|7.50|it's \ "q"|t|3|<null>`, `2|b2|<null>|x|<null>|1|<null>`, `3|c|7.50|it's \ "q"|t|3|<null>`,
			"4|d|1.25|<null>|f|<null>|p")
		// The default is gone: later rows carry their own values.
		e.mustApply(wide.Change(contracts.OpCreate, 40, 1, `{"id":5}`, ``, `{"id":5,"name":"e","price":null,"note":null,"flag":null,"n":null,"plain":null}`))
		e.expect(`SELECT id, name, price, note, flag, n, plain FROM sink.items WHERE id = 5`, "5|e|<null>|<null>|<null>|<null>|<null>")
		e.expect(`SELECT count(*) FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
			WHERE d.adrelid = 'sink.items'::regclass AND a.attname IN ('price', 'note', 'flag', 'n')`, "0")
	})

	t.Run("a widened source column widens the destination column", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		narrow := ev{Table: "wide", Columns: []contracts.Column{
			{Name: "id", Type: "integer", BaseType: "integer", Key: true},
			{Name: "n", Type: "numeric(10,1)", BaseType: "numeric(10,1)"},
			{Name: "s", Type: "character varying(3)", BaseType: "character varying(3)"},
			{Name: "i", Type: "integer", BaseType: "integer"},
		}}
		e.mustApply(narrow.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"n":"1.5","s":"abc","i":7}`))
		wide := ev{Table: "wide", Columns: []contracts.Column{
			{Name: "id", Type: "integer", BaseType: "integer", Key: true},
			{Name: "n", Type: "numeric(12,3)", BaseType: "numeric(12,3)"},
			{Name: "s", Type: "character varying(10)", BaseType: "character varying(10)"},
			{Name: "i", Type: "bigint", BaseType: "bigint"},
		}}
		e.mustApply(wide.Change(contracts.OpCreate, 20, 1, `{"id":2}`, ``, `{"id":2,"n":"1.005","s":"abcdefgh","i":9223372036854775807}`))
		e.expect(`SELECT id, n, s, i FROM sink.wide ORDER BY id`, "1|1.500|abc|7", "2|1.005|abcdefgh|9223372036854775807")
		e.expect(`SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute
			WHERE attrelid = 'sink.wide'::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\_rosetta%'`,
			"id integer, n numeric(12,3), s character varying(10), i bigint")
		// A narrowing is not applied: values the column would change are
		// refused (the exactness check), values that fit arrive.
		e.mustApply(narrow.Change(contracts.OpCreate, 30, 1, `{"id":3}`, ``, `{"id":3,"n":"2.5","s":"x","i":1}`))
		e.expect(`SELECT n FROM sink.wide WHERE id = 3`, "2.500")
	})

	t.Run("types round trip through copy", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		cols := []contracts.Column{
			{Name: "id", Type: "bigint", BaseType: "bigint", Key: true},
			{Name: "t", Type: "text", BaseType: "text"},
			{Name: "b", Type: "boolean", BaseType: "boolean"},
			{Name: "n", Type: "numeric", BaseType: "numeric"},
			{Name: "ts", Type: "timestamp with time zone", BaseType: "timestamp with time zone"},
			{Name: "j", Type: "jsonb", BaseType: "jsonb"},
			{Name: "raw", Type: "bytea", BaseType: "bytea"},
			{Name: "arr", Type: "text[]", BaseType: "text[]"},
			{Name: "c", Type: `"char"`, BaseType: `"char"`},
			{Name: "evil", Type: "int); DROP TABLE x; --", BaseType: "int); DROP TABLE x; --"},
		}
		ty := ev{Table: "typed", Columns: cols}
		e.mustApply(ty.Change(contracts.OpCreate, 10, 1, `{"id":9007199254740993}`, ``,
			`{"id":9007199254740993,"t":"tab\there\nnew line \\N back\\slash \r","b":true,"n":"123456789012345678901234567890.123",
			  "ts":"2024-01-02 03:04:05.123456+00","j":"{\"a\": [1, \"x\"]}","raw":"\\xdeadbeef","arr":"{a,\"b c\",NULL}","c":"x","evil":"42"}`))
		if _, err := e.conn.Exec(context.Background(), "SET TIME ZONE 'UTC'"); err != nil {
			t.Fatal(err)
		}
		e.expect(`SELECT id, t, b, n, ts, j, raw, arr, c, evil FROM sink.typed`,
			"9007199254740993|tab\there\nnew line \\N back\\slash \r|t|123456789012345678901234567890.123|2024-01-02 03:04:05.123456+00|"+
				`{"a": [1, "x"]}|\xdeadbeef|{a,"b c",NULL}|x|42`)
		e.expect(`SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'sink.typed'::regclass AND attname IN ('evil', 'c') ORDER BY attname`,
			`"char"`, "text")
	})

	t.Run("bad data is a permanent error and nothing is applied", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		e.mustApply(it.Ins(10, 1, "a"))
		err := e.apply(it.Ins(20, 2, "b"), it.Change(contracts.OpCreate, 20, 2, `{"id":"not a number"}`, ``, `{"id":"not a number"}`))
		if err == nil || !sinkrunner.IsPermanent(err) {
			t.Fatalf("apply of invalid integer: %v; want a permanent error", err)
		}
		e.expect(items, "1|a|<null>")
		// The driver recovers: a good batch applies on the same driver.
		e.mustApply(it.Ins(30, 3, "c"))
		e.expect(items, "1|a|<null>", "3|c|<null>")
		reserved := ev{Table: "items", Columns: append(append([]contracts.Column{}, itemCols...), contracts.Column{Name: "_rosetta_x", BaseType: "text"})}
		if err := e.apply(reserved.Ins(40, 4, "d")); !sinkrunner.IsPermanent(err) {
			t.Errorf("reserved column name: %v; want a permanent error", err)
		}
	})

	t.Run("a key btree cannot index is a permanent error naming the column", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		// No primary key at the source, REPLICA IDENTITY FULL: every
		// column is the key.
		full := ev{Table: "nopk", Columns: []contracts.Column{
			{Name: "n", Type: "integer", BaseType: "integer", Key: true},
			{Name: "doc", Type: "json", BaseType: "json", Key: true},
		}}
		err := e.apply(full.Change(contracts.OpCreate, 10, 1, `{"n":1,"doc":"{}"}`, ``, `{"n":1,"doc":"{}"}`))
		if err == nil || !sinkrunner.IsPermanent(err) || sinkrunner.ErrorClass(err) != "unindexable_key" ||
			!strings.Contains(err.Error(), `sink.nopk: key column "doc" (json)`) {
			t.Fatalf("apply: %v; want a permanent unindexable_key error naming sink.nopk and doc", err)
		}
		// A key value too large for the key's index (about 2.7 kB) fails
		// for good too, instead of being retried forever.
		wide := ev{Table: "nopk_text", Columns: []contracts.Column{
			{Name: "n", Type: "integer", BaseType: "integer", Key: true},
			{Name: "t", Type: "text", BaseType: "text", Key: true},
		}}
		var sb strings.Builder
		for i := range 200 { // incompressible: index entries are compressed
			fmt.Fprintf(&sb, "%x", sha256.Sum256([]byte{byte(i)}))
		}
		big := sb.String()
		row := fmt.Sprintf(`{"n":1,"t":%q}`, big)
		if err := e.apply(wide.Change(contracts.OpCreate, 10, 1, row, ``, row)); err == nil || !sinkrunner.IsPermanent(err) {
			t.Fatalf("apply of a 12.8 kB key: %v; want a permanent error", err)
		}
	})

	t.Run("a failed first batch leaves nothing behind", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "sink")
		bad := it.Change(contracts.OpCreate, 10, 2, `{"id":"x"}`, ``, `{"id":"x"}`)
		for range 2 {
			if err := e.apply(it.Ins(10, 1, "a"), bad); !sinkrunner.IsPermanent(err) {
				t.Fatalf("apply of invalid integer: %v; want a permanent error", err)
			}
		}
		e.expect(`SELECT to_regclass('sink.items') IS NULL, to_regclass('_rosetta.tables') IS NULL`, "t|t")
		e.mustApply(it.Ins(10, 1, "a"))
		e.expect(items, "1|a|<null>")
	})

	t.Run("tables in several schemas and tables of one batch", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, pg, "Other Schema")
		other := ev{Table: "Odd \"name\".x", Columns: itemCols}
		e.mustApply(it.Ins(10, 1, "a"), other.Ins(10, 2, "b"), it.Ins(11, 3, "c"))
		e.expect(`SELECT id, name FROM "Other Schema".items ORDER BY id`, "1|a", "3|c")
		e.expect(`SELECT id, name FROM "Other Schema"."Odd ""name"".x"`, "2|b")
		e.expect(`SELECT count(*) FROM _rosetta.tables WHERE schema_name = 'Other Schema'`, "2")
	})
}

func TestDriverConnectErrors(t *testing.T) {
	t.Parallel()
	port := testkit.FreePort(t)
	raw := fmt.Sprintf(`{"host":"127.0.0.1","port":"%d","database":"d","user":"u","password":"s3cret-'\\pw","sslmode":"disable"}`, port)
	cfg, err := ParseConfig(json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectTimeout = 2 * time.Second
	d := New(cfg, quietLog())
	defer d.Close()
	batches, _ := cdc.Collapse([]contracts.Change{ev{Table: "items", Columns: itemCols}.Ins(1, 1, "a")})
	err = d.Apply(context.Background(), batches)
	if err == nil {
		t.Fatal("apply to a closed port succeeded")
	}
	if sinkrunner.IsPermanent(err) {
		t.Errorf("connection error classified permanent: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks the password: %v", err)
	}
	if got := fmt.Sprint(slog.AnyValue(cfg).Resolve()); strings.Contains(got, "s3cret") {
		t.Errorf("config log value leaks the password: %s", got)
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(json.RawMessage(`{"host":"h","database":"d","user":"u","name":"ignored"}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 5432 || cfg.Schema != "public" || cfg.SSLMode != "prefer" || cfg.DroppedColumns != DroppedKeep {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	tests := []struct{ raw, want string }{
		{`{"database":"d","user":"u"}`, "host is empty"},
		{`{"host":"h","database":"d","user":"u","port":70000}`, "out of range"},
		{`{"host":"h","database":"d","user":"u","port":"x"}`, "not an integer"},
		{`{"host":"h","database":"d","user":"u","sslmode":"sometimes"}`, "sslmode"},
		{`{"host":"h","database":"d","user":"u","schema":"_rosetta"}`, "reserved"},
		{`{"host":"h","database":"d","user":"u","dropped_columns":"forget"}`, "dropped_columns"},
		{`{"host":"h","user":"u"}`, "database is empty"},
		{`[]`, "decode"},
	}
	for _, tt := range tests {
		_, err := ParseConfig(json.RawMessage(tt.raw))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig(%s) = %v, want error containing %q", tt.raw, err, tt.want)
		}
	}
}

func TestColumnType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"integer":                         "integer",
		"character varying(20)[]":         "character varying(20)[]",
		"numeric(10,2)":                   "numeric(10,2)",
		"timestamp(3) with time zone":     "timestamp(3) with time zone",
		"double precision[][]":            "double precision[][]",
		`"char"`:                          `"char"`,
		"public.mood":                     "text",
		"Integer":                         "text",
		"int; drop table x":               "text",
		`text" ; --`:                      "text",
		"":                                "text",
		"numeric(10,2) collate \"C\"":     "text",
		strings.Repeat("a", 200):          "text",
		"bit varying(5)":                  "bit varying(5)",
		"interval year to month":          "interval year to month",
		"timestamp without time zone[]":   "timestamp without time zone[]",
		"character(3) varying(2)":         "text",
		"tsvector":                        "tsvector",
		"int4range":                       "int4range",
		"USER-DEFINED":                    "text",
		"numeric(10,2))--":                "text",
		"numeric(3,-2)":                   "numeric(3,-2)", // PostgreSQL 15: negative scale
		"numeric(2,5)":                    "numeric(2,5)",  // PostgreSQL 15: scale above precision
		"numeric(3,-)":                    "text",
		"numeric(-)":                      "text",
		"numeric(--3)":                    "text",
		"x(1)(2)":                         "text",
		"time(6) with time zone":          "time(6) with time zone",
		"character varying":               "character varying",
		"bytea":                           "bytea",
		"json[]":                          "json[]",
		"geometry(Point,4326)":            "text",
		"double precision":                "double precision",
		"numeric(1000, 20)":               "numeric(1000, 20)",
		"a\nb":                            "text",
		"\"char\"[]":                      "\"char\"[]",
		"smallint[]":                      "smallint[]",
		"timestamp(3) with time zone[]":   "timestamp(3) with time zone[]",
		"pg_catalog.int4":                 "text",
		"money":                           "money",
		"uuid":                            "uuid",
		"inet":                            "inet",
		"xml":                             "xml",
		"oid":                             "oid",
		"name":                            "name",
		"text COLLATE pg_catalog.default": "text",
	} {
		if got := columnType(in); got != want {
			t.Errorf("columnType(%q) = %q, want %q", in, got, want)
		}
	}
}
