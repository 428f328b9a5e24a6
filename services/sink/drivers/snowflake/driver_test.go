package snowflake

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/youmark/pkcs8"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit/fakesnowflake"
)

const items = `SELECT ID, NAME, BIG FROM ROSETTA.PUBLIC.ITEMS ORDER BY ID`

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
		e.expect(`SELECT ID, _ROSETTA_LSN, _ROSETTA_SEQ FROM ITEMS ORDER BY ID`, "1|10|1", "2|20|1", "4|22|1")
		e.expect(`SELECT ID, _ROSETTA_LSN FROM _ROSETTA_TOMB_ITEMS`, "3|21")
		e.noStagedFiles()
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
		// The same batch again changes nothing.
		e.mustApply(
			it.Change(contracts.OpUpdate, 30, 1, `{"id":3}`, `{"id":2}`, `{"id":3,"name":"c"}`, "big"),
			it.Change(contracts.OpUpdate, 30, 2, `{"id":8}`, `{"id":7}`, `{"id":8,"name":"y"}`, "big"),
			it.Change(contracts.OpUpdate, 30, 3, `{"id":9}`, `{"id":8}`, `{"id":9,"name":"x"}`, "big"),
		)
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
		e.expect(`SELECT TENANT, N, V FROM PAIRS ORDER BY TENANT, N`, "a|2|a2", "b|1|b1'")
		e.expect(`SELECT TENANT, N FROM _ROSETTA_TOMB_PAIRS`, "a|1")
		// An older insert of the deleted (a, 1) does not come back.
		e.mustApply(ck.Change(contracts.OpCreate, 15, 1, `{"n":1,"tenant":"a"}`, ``, `{"tenant":"a","n":1,"v":"old"}`))
		e.expect(`SELECT TENANT, N, V FROM PAIRS ORDER BY TENANT, N`, "a|2|a2", "b|1|b1'")
	})

	t.Run("unchanged toast value of 1MB is kept", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		big := strings.Repeat("0123456789abcdef,\t\"\\\n\r'é", 1<<20/26+1)
		bigJSON, _ := json.Marshal(big)
		e.mustApply(it.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"name":"a","big":`+string(bigJSON)+`}`))
		e.mustApply(it.Upd(20, 1, "renamed"))
		e.mustApply(it.Upd(30, 1, "again"), it.Change(contracts.OpUpdate, 30, 2, `{"id":2}`, `{"id":1}`, `{"id":2,"name":"moved"}`, "big"))
		got := e.rows(`SELECT ID, NAME, BIG FROM ITEMS`)
		if len(got) != 1 {
			t.Fatalf("rows = %d, want 1", len(got))
		}
		sum := sha256.Sum256([]byte(big))
		want := fmt.Sprintf("2|moved|%d bytes %x", len(big), sum[:8])
		parts := strings.SplitN(got[0], "|", 3)
		gotSum := sha256.Sum256([]byte(parts[2]))
		if g := fmt.Sprintf("%s|%s|%d bytes %x", parts[0], parts[1], len(parts[2]), gotSum[:8]); g != want {
			t.Errorf("row = %s, want %s", g, want)
		}
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
		e.expect(`SELECT ID, _ROSETTA_LSN FROM _ROSETTA_TOMB_ITEMS ORDER BY ID`, "4|30")
	})

	t.Run("older change after a newer one or a delete is ignored", func(t *testing.T) {
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
		// Same LSN, lower position in the transaction: older too.
		e.mustApply(it.Change(contracts.OpUpdate, 20, 0, `{"id":1}`, ``, `{"id":1,"name":"seq 0","big":null}`))
		e.expect(items, "1|new|<null>")
	})

	t.Run("soft delete", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, map[string]any{"soft_delete": true})
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"), it.Ins(10, 3, "c"))
		e.mustApply(it.Del(20, 2), it.Del(21, 9)) // 9 never existed: its deleted row is the tombstone
		const all = `SELECT ID, NAME, _ROSETTA_DELETED, _ROSETTA_LSN FROM ITEMS ORDER BY ID`
		e.expect(all, "1|a|0|10", "2|b|1|20", "3|c|0|10", "9|<null>|1|21")
		// Older changes do not resurrect; the same batch twice converges.
		e.mustApply(it.Ins(15, 2, "old"), it.Ins(15, 9, "old"))
		e.mustApply(it.Del(20, 2), it.Del(21, 9))
		e.expect(all, "1|a|0|10", "2|b|1|20", "3|c|0|10", "9|<null>|1|21")
		// A newer insert brings the key back.
		e.mustApply(it.Ins(30, 2, "back"))
		e.expect(all, "1|a|0|10", "2|back|0|30", "3|c|0|10", "9|<null>|1|21")
		// Truncate flags older rows deleted at its version; newer ones stay.
		// (Row 4, inserted before the truncate in the same batch, is
		// collapsed away.)
		e.mustApply(it.Ins(40, 4, "d"), it.Truncate(50), it.Ins(51, 5, "e"))
		e.expect(`SELECT ID, _ROSETTA_DELETED, _ROSETTA_LSN FROM ITEMS ORDER BY ID`,
			"1|1|50", "2|1|50", "3|1|50", "5|0|51", "9|1|50")
		e.mustApply(it.Upd(45, 1, "between"), it.Ins(46, 6, "before truncate"))
		e.expect(`SELECT ID, NAME, _ROSETTA_DELETED FROM ITEMS WHERE NOT _ROSETTA_DELETED ORDER BY ID`, "5|e|0")
		e.expect(`SELECT COUNT(*) FROM ROSETTA.PUBLIC."_ROSETTA_TABLES"`, "1")
	})

	t.Run("truncate", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"), it.Del(10, 8))
		e.mustApply(it.Ins(11, 9, "before truncate"), it.Truncate(20), it.Ins(21, 3, "c"))
		e.expect(items, "3|c|<null>")
		e.expect(`SELECT COUNT(*) FROM _ROSETTA_TOMB_ITEMS`, "0")
		// Redelivery of everything before and including the truncate.
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
		e.expect(items, "3|c|<null>")
		e.mustApply(it.Truncate(20))
		e.expect(items, "3|c|<null>")
		e.mustApply(it.Ins(11, 9, "before truncate"), it.Truncate(20), it.Ins(21, 3, "c"))
		e.expect(items, "3|c|<null>")
		e.expect(`SELECT TABLE_NAME, TRUNCATE_LSN, TRUNCATE_SEQ FROM _ROSETTA_TABLES`, "ITEMS|20|1")
		// A lone truncate (no columns) of a table never created records the
		// watermark only: an older row arriving later is not inserted.
		never := ev{Table: "never", Columns: itemCols}
		e.mustApply(ev{Table: "never"}.Truncate(40))
		e.mustApply(never.Ins(30, 1, "before the truncate"), never.Ins(41, 2, "after"))
		e.expect(`SELECT ID, NAME FROM NEVER`, "2|after")
		// A lone truncate of an existing table.
		e.mustApply(ev{Table: "items"}.Truncate(50))
		e.expect(items)
	})

	t.Run("columns are added", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		e.mustApply(it.Ins(10, 1, "a"))
		wide := ev{Table: "items", Columns: append(append([]contracts.Column{}, itemCols...),
			contracts.Column{Name: "price", Type: "numeric(10,2)", BaseType: "numeric(10,2)"},
			contracts.Column{Name: "Mixed Case", Type: "public.mood", BaseType: "text"})}
		e.mustApply(wide.Change(contracts.OpCreate, 20, 1, `{"id":2}`, ``, `{"id":2,"name":"b","price":"12.50","Mixed Case":"happy"}`))
		e.expect(`SELECT ID, NAME, PRICE, "Mixed Case" FROM ITEMS ORDER BY ID`, "1|a|<null>|<null>", "2|b|12.50|happy")
		e.expectTypes("ITEMS", "ID NUMBER(10,0)", "NAME TEXT", "BIG TEXT", "_ROSETTA_LSN NUMBER(20,0)", "_ROSETTA_SEQ NUMBER(20,0)", "_ROSETTA_COLV VARIANT",
			"PRICE NUMBER(10,2)", "Mixed Case TEXT")
		// A table changed behind the driver's back: the cached shape is
		// refreshed after the failure.
		queryRows(t, e.rd, `ALTER TABLE ITEMS DROP COLUMN PRICE`)
		ins := wide.Change(contracts.OpCreate, 30, 1, `{"id":3}`, ``, `{"id":3,"name":"c","price":"1"}`)
		if err := e.apply(ins); err != nil {
			e.mustApply(ins)
		}
		e.expect(`SELECT ID, PRICE FROM ITEMS WHERE ID = 3`, "3|1.00")
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
			contracts.Column{Name: "day", Type: "date", BaseType: "date", ExistingValue: `"2024-02-29"`},
			contracts.Column{Name: "doc", Type: "jsonb", BaseType: "jsonb", ExistingValue: `"{\"a\": 1}"`},
			contracts.Column{Name: "plain", Type: "text", BaseType: "text"})}
		// One batch: a row written before the ALTER, then rows after it.
		e.mustApply(it.Ins(20, 3, "c"),
			wide.Change(contracts.OpCreate, 30, 1, `{"id":4}`, ``, `{"id":4,"name":"d","price":"1.25","note":null,"flag":false,"n":null,"day":null,"doc":null,"plain":"p"}`),
			wide.Change(contracts.OpUpdate, 30, 2, `{"id":2}`, ``, `{"id":2,"name":"b2","price":null,"note":"x","flag":null,"n":1,"day":null,"doc":null,"plain":null}`))
		// VARIANT columns take no default: their existing rows stay NULL
		// (docs/snowflake.md), except rows of the batch, filled by collapse.
		old := `7.50|it's \ "q"|1|3|2024-02-29T00:00:00Z`
		e.expect(`SELECT ID, NAME, PRICE, NOTE, FLAG, N, DAY, DOC, PLAIN FROM ITEMS ORDER BY ID`,
			"1|a|"+old+"|<null>|<null>", "2|b2|<null>|x|<null>|1|<null>|<null>|<null>", "3|c|"+old+"|{\n  \"a\": 1\n}|<null>",
			"4|d|1.25|<null>|0|<null>|<null>|<null>|p")
		// The default is gone: later rows carry their own values.
		e.mustApply(wide.Change(contracts.OpCreate, 40, 1, `{"id":5}`, ``, `{"id":5,"name":"e","plain":null}`))
		e.expect(`SELECT ID, PRICE, NOTE, FLAG, N, DAY FROM ITEMS WHERE ID = 5`, "5|<null>|<null>|<null>|<null>|<null>")
	})

	t.Run("names keep or fold case and are quoted", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		odd := ev{Table: `Order "Lines"`, Columns: []contracts.Column{
			{Name: "ID", Type: "integer", BaseType: "integer", Key: true},
			{Name: "Mixed Case", Type: "text", BaseType: "text"},
			{Name: `a"b`, Type: "text", BaseType: "text"},
			{Name: "plain", Type: "text", BaseType: "text"},
		}}
		e.mustApply(odd.Change(contracts.OpCreate, 10, 1, `{"ID":1}`, ``, `{"ID":1,"Mixed Case":"m","a\"b":"q","plain":"p"}`))
		// a"b is all lower case: A"B, like an unquoted name (destName).
		e.expect(`SELECT "ID", "Mixed Case", "A""B", PLAIN FROM ROSETTA.PUBLIC."Order ""Lines"""`, "1|m|q|p")
		clash := ev{Table: "clash", Columns: []contracts.Column{
			{Name: "id", Type: "integer", BaseType: "integer", Key: true},
			{Name: "ID", Type: "integer", BaseType: "integer"},
		}}
		err := e.apply(clash.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"ID":2}`))
		if !sinkrunner.IsPermanent(err) || !strings.Contains(err.Error(), `both map to the Snowflake column "ID"`) {
			t.Errorf("columns id and ID: %v; want a permanent error naming the clash", err)
		}
	})

	t.Run("bad data is a permanent error naming table and column", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		pr := ev{Table: "prices", Columns: []contracts.Column{
			{Name: "id", Type: "integer", BaseType: "integer", Key: true},
			{Name: "amount", Type: "numeric(10,2)", BaseType: "numeric(10,2)"},
		}}
		e.mustApply(pr.Change(contracts.OpCreate, 10, 1, `{"id":1}`, ``, `{"id":1,"amount":"1.50"}`))
		for _, tt := range []struct{ value, why string }{
			{`"NaN"`, "NaN has no NUMBER(10,2) representation"},
			{`"123456789.00"`, "9 integer digits; NUMBER(10,2) holds 8"},
			{`"1.005"`, "3 decimal places"},
		} {
			err := e.apply(ins2(pr, 20, 2, tt.value))
			var re *RowError
			if !sinkrunner.IsPermanent(err) || !errors.As(err, &re) {
				t.Fatalf("amount %s: %v; want a permanent *RowError", tt.value, err)
			}
			if re.Table != "app.prices" || re.Column != "amount" || re.Version != (contracts.Version{LSN: 20, Seq: 1}) ||
				!strings.Contains(err.Error(), tt.why) {
				t.Errorf("amount %s: %v; want table app.prices, column amount, version 0/14 seq 1, %q", tt.value, err, tt.why)
			}
			if c := sinkrunner.ErrorClass(err); c != sinkrunner.ClassOutOfRange {
				t.Errorf("amount %s: class %s, want %s", tt.value, c, sinkrunner.ClassOutOfRange)
			}
		}
		e.expect(`SELECT ID, AMOUNT FROM PRICES`, "1|1.50")
		// The driver recovers: a good batch applies on the same driver.
		e.mustApply(ins2(pr, 30, 3, `"2.25"`))
		e.expect(`SELECT ID, AMOUNT FROM PRICES ORDER BY ID`, "1|1.50", "3|2.25")
		reserved := ev{Table: "items", Columns: append(append([]contracts.Column{}, itemCols...), contracts.Column{Name: "_Rosetta_x", BaseType: "text"})}
		if err := e.apply(reserved.Ins(40, 4, "d")); !sinkrunner.IsPermanent(err) {
			t.Errorf("reserved column name: %v; want a permanent error", err)
		}
	})

	t.Run("one transaction for all tables of a batch", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		other := ev{Table: "other", Columns: itemCols}
		e.mustApply(it.Ins(10, 1, "a"), other.Ins(10, 1, "a"))
		// NAME becomes NOT NULL behind the driver's back: the second table's
		// MERGE fails inside the transaction, after the first one's.
		queryRows(t, e.rd, `ALTER TABLE OTHER ALTER COLUMN NAME SET NOT NULL`)
		err := e.apply(it.Ins(20, 2, "b"), other.Change(contracts.OpCreate, 20, 2, `{"id":2}`, ``, `{"id":2,"name":null}`))
		if !sinkrunner.IsPermanent(err) || sinkrunner.ErrorClass(err) != sinkrunner.ClassConstraint {
			t.Fatalf("NULL into a NOT NULL column: %v (class %s); want a permanent %s error", err, sinkrunner.ErrorClass(err), sinkrunner.ClassConstraint)
		}
		e.expect(items, "1|a|<null>")
		e.expect(`SELECT ID FROM OTHER`, "1")
		e.noStagedFiles()
	})
}

// ins2 inserts a row of the prices table with a raw JSON amount.
func ins2(e ev, lsn uint64, id int, amount string) contracts.Change {
	return e.Change(contracts.OpCreate, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "", fmt.Sprintf(`{"id":%d,"amount":%s}`, id, amount))
}

// expectTypes checks a table's column types as gosnowflake reports them.
func (e *env) expectTypes(table string, want ...string) {
	e.t.Helper()
	rows, err := e.rd.QueryContext(context.Background(), "SELECT * FROM "+table+" LIMIT 0")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		e.t.Fatal(err)
	}
	var got []string
	for _, ct := range cts {
		typ := ct.DatabaseTypeName()
		if p, s, ok := ct.DecimalSize(); ok && typ == "FIXED" {
			typ = fmt.Sprintf("NUMBER(%d,%d)", p, s)
		}
		got = append(got, ct.Name()+" "+typ)
	}
	if !reflect.DeepEqual(got, want) {
		e.t.Errorf("columns of %s\n got %q\nwant %q", table, got, want)
	}
}

// noStagedFiles checks that no batch file is left in any stage.
func (e *env) noStagedFiles() {
	e.t.Helper()
	err := filepath.WalkDir(e.srv.StageDir(), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			e.t.Errorf("staged file left behind: %s", path)
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestTypesRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	col := func(name, typ string) contracts.Column { return contracts.Column{Name: name, Type: typ, BaseType: typ} }
	cols := []contracts.Column{
		{Name: "id", Type: "bigint", BaseType: "bigint", Key: true},
		col("i2", "smallint"), col("i4", "integer"),
		col("dec", "numeric(12,4)"), col("free", "numeric"), col("wide", "numeric(50,2)"),
		col("f8", "double precision"), col("f4", "real"), col("flag", "boolean"),
		col("txt", "text"), col("vc", "character varying(20)"),
		col("day", "date"), col("clock", "time without time zone"), col("ntz", "timestamp without time zone"),
		col("tz", "timestamp with time zone"), col("ttz", "time with time zone"),
		col("raw", "bytea"), col("doc", "jsonb"), col("tags", "text[]"), col("grid", "integer[]"),
		col("uid", "uuid"), col("span", "interval"),
		{Name: "mood", Type: "public.mood", BaseType: "text"},
		{Name: "amount", Type: "public.money_domain", BaseType: "numeric(8,2)"},
	}
	ty := ev{Table: "typed", Columns: cols}
	e.mustApply(
		ty.Change(contracts.OpCreate, 10, 1, `{"id":9007199254740993}`, ``, `{"id":9007199254740993,
			"i2":-32768,"i4":2147483647,"dec":"-12.3400","free":"123456789012345678901234567890.123456789012345",
			"wide":"1234567890123456789012345678901234567890.12","f8":"1.5e-07","f4":"3.4028235e+38","flag":true,
			"txt":"it's \"quoted\", a,comma\nnew line \\N back\\slash ünïcode","vc":"",
			"day":"2024-02-29","clock":"13:14:15.123456","ntz":"2024-02-29 23:59:58.654321",
			"tz":"2024-02-29 23:59:58.654321+05:30","ttz":"13:14:15+02",
			"raw":"\\xdeadbeef00","doc":"{\"a\": [1, \"x\", {\"b\": null}], \"big\": 12345678901234567890}",
			"tags":"{a,\"b c\",NULL,\"d\\\"e\"}","grid":"{{1,2},{3,NULL}}",
			"uid":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","span":"1 day 02:03:04","mood":"happy","amount":"99.95"}`),
		ty.Change(contracts.OpCreate, 10, 2, `{"id":2}`, ``, `{"id":2,"f8":"NaN","f4":"-Infinity","flag":false,
			"txt":null,"raw":"\\x","doc":"null","tags":"{}","tz":"1999-12-31 23:59:59+00","ntz":"0001-01-01 00:00:00"}`),
		ty.Change(contracts.OpCreate, 10, 3, `{"id":3}`, ``, `{"id":3,"f8":"Infinity"}`),
	)
	e.expectTypes("TYPED",
		"ID NUMBER(19,0)", "I2 NUMBER(5,0)", "I4 NUMBER(10,0)", "DEC NUMBER(12,4)", "FREE TEXT", "WIDE TEXT",
		"F8 REAL", "F4 REAL", "FLAG BOOLEAN", "TXT TEXT", "VC TEXT", "DAY DATE", "CLOCK TIME", "NTZ TIMESTAMP_NTZ",
		"TZ TIMESTAMP_TZ", "TTZ TEXT", "RAW BINARY", "DOC VARIANT", "TAGS VARIANT", "GRID VARIANT", "UID TEXT", "SPAN TEXT",
		"MOOD TEXT", "AMOUNT NUMBER(8,2)", "_ROSETTA_LSN NUMBER(20,0)", "_ROSETTA_SEQ NUMBER(20,0)", "_ROSETTA_COLV VARIANT")
	// Casts to VARCHAR show what the fake stored (DuckDB's text forms).
	e.expect(`SELECT ID, I2, I4, DEC, FREE, WIDE, F8, F4, FLAG, TXT, VC FROM TYPED ORDER BY ID`,
		"2|<null>|<null>|<null>|<null>|<null>|NaN|-inf|0|<null>|<null>",
		"3|<null>|<null>|<null>|<null>|<null>|inf|<null>|<null>|<null>|<null>",
		"9007199254740993|-32768|2147483647|-12.3400|123456789012345678901234567890.123456789012345|"+
			"1234567890123456789012345678901234567890.12|1.5e-07|3.4028235e+38|1|"+
			"it's \"quoted\", a,comma\nnew line \\N back\\slash ünïcode|")
	e.expect(`SELECT ID, DAY::VARCHAR, CLOCK::VARCHAR, NTZ::VARCHAR, TZ::VARCHAR, TTZ, HEX(RAW), UID, SPAN, MOOD, AMOUNT FROM TYPED WHERE ID <> 3 ORDER BY ID`,
		"2|<null>|<null>|0001-01-01 00:00:00|1999-12-31 23:59:59+00|<null>||<null>|<null>|<null>|<null>",
		"9007199254740993|2024-02-29|13:14:15.123456|2024-02-29 23:59:58.654321|2024-02-29 18:29:58.654321+00|13:14:15+02|DEADBEEF00|"+
			"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|1 day 02:03:04|happy|99.95")
	// JSON comes back as Snowflake prints VARIANT (indented, keys sorted):
	// compare values.
	for _, tt := range []struct{ query, want string }{
		{`SELECT DOC FROM TYPED WHERE ID = 9007199254740993`, `{"a": [1, "x", {"b": null}], "big": 12345678901234567890}`},
		{`SELECT TAGS FROM TYPED WHERE ID = 9007199254740993`, `["a", "b c", null, "d\"e"]`},
		{`SELECT GRID FROM TYPED WHERE ID = 9007199254740993`, `[[1, 2], [3, null]]`},
		{`SELECT DOC FROM TYPED WHERE ID = 2`, `null`},
		{`SELECT TAGS FROM TYPED WHERE ID = 2`, `[]`},
		{`SELECT DOC IS NULL FROM TYPED WHERE ID = 3`, `1`},
	} {
		got := e.rows(tt.query)
		if len(got) != 1 || !jsonEqual(got[0], tt.want) {
			t.Errorf("%s = %q, want JSON %s", tt.query, got, tt.want)
		}
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	da, db := json.NewDecoder(strings.NewReader(a)), json.NewDecoder(strings.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return a == b
	}
	return reflect.DeepEqual(x, y)
}

func TestKeys(t *testing.T) {
	t.Parallel()
	it := ev{Table: "items", Columns: itemCols}

	t.Run("wrong key is a clear config error, fixed without a restart", func(t *testing.T) {
		t.Parallel()
		srv := startFake(t)
		cfg := parseTestConfig(t, fakeConfig(t, srv, map[string]any{"private_key": pemPKCS8(t, testKeys()[1])}))
		e := &env{t: t, srv: srv, drv: New(cfg, quietLog()), rd: openReader(t, srv)}
		t.Cleanup(func() { _ = e.drv.Close() })
		err := e.apply(it.Ins(10, 1, "a"))
		var ce *ConfigError
		if !errors.As(err, &ce) || sinkrunner.IsPermanent(err) {
			// Not permanent: the runner would dead-letter every change.
			t.Fatalf("login with an unregistered key: %v; want a *ConfigError, not permanent", err)
		}
		fp := keyFingerprint(testKeys()[1])
		for _, want := range []string{"rejected the key-pair login of user loader", "RSA_PUBLIC_KEY", fp} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(fmt.Sprint(cfg.LogValue()), "PRIVATE KEY") {
			t.Errorf("error or log value shows the key")
		}
		// The operator registers the key: the same driver logs in on the
		// next attempt.
		srv.SetUser(fakesnowflake.User{Name: testUser, PublicKeys: []*rsa.PublicKey{&testKeys()[0].PublicKey, &testKeys()[1].PublicKey}})
		e.mustApply(it.Ins(10, 1, "a"))
		e.expect(items, "1|a|<null>")
	})

	t.Run("encrypted key with passphrase", func(t *testing.T) {
		t.Parallel()
		srv := startFake(t)
		der, err := pkcs8.MarshalPrivateKey(testKeys()[0], []byte("s3cret-pass"), nil)
		if err != nil {
			t.Fatal(err)
		}
		encrypted := string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}))
		for _, tt := range []struct {
			pass, want string
		}{
			{"", "private_key is encrypted: set private_key_passphrase"},
			{"wrong-pass", "private_key_passphrase does not decrypt private_key"},
		} {
			_, err := Factory(context.Background(), fakeConfig(t, srv, map[string]any{
				"private_key": encrypted, "private_key_passphrase": tt.pass}), quietLog())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("passphrase %q: %v; want %q", tt.pass, err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), "wrong-pass") || strings.Contains(err.Error(), "PRIVATE KEY")) {
				t.Errorf("error leaks the passphrase or key: %v", err)
			}
		}
		cfg := parseTestConfig(t, fakeConfig(t, srv, map[string]any{"private_key": encrypted, "private_key_passphrase": "s3cret-pass"}))
		if got := fmt.Sprint(cfg.LogValue()); strings.Contains(got, "s3cret") || strings.Contains(got, "PRIVATE KEY") {
			t.Errorf("log value leaks a secret: %s", got)
		}
		e := &env{t: t, srv: srv, drv: New(cfg, quietLog()), rd: openReader(t, srv)}
		t.Cleanup(func() { _ = e.drv.Close() })
		e.mustApply(it.Ins(10, 1, "a"))
		e.expect(items, "1|a|<null>")
	})

	t.Run("key file", func(t *testing.T) {
		t.Parallel()
		srv := startFake(t)
		path := filepath.Join(t.TempDir(), "rsa_key.p8")
		writeFile(t, path, pemPKCS8(t, testKeys()[0]))
		cfg := parseTestConfig(t, fakeConfig(t, srv, map[string]any{"private_key": nil, "private_key_path": path}))
		e := &env{t: t, srv: srv, drv: New(cfg, quietLog()), rd: openReader(t, srv)}
		t.Cleanup(func() { _ = e.drv.Close() })
		e.mustApply(it.Ins(10, 1, "a"))
		e.expect(items, "1|a|<null>")
	})
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
