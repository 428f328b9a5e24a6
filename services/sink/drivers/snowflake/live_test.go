package snowflake

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestLiveSnowflake runs the driver against a real Snowflake account when
// SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA
// and SNOWFLAKE_PRIVATE_KEY_PATH (or SNOWFLAKE_PRIVATE_KEY) are set, with
// optional SNOWFLAKE_WAREHOUSE, SNOWFLAKE_ROLE and
// SNOWFLAKE_PRIVATE_KEY_PASSPHRASE. It creates tables named
// ROSETTA_LIVE_<suffix> in that schema and drops them at the end, then runs
// LiveCheck (ROSETTA_CHECK_<hex>, dropped too). It costs a few seconds of
// warehouse time.
func TestLiveSnowflake(t *testing.T) {
	getenv := func(name string) string { return os.Getenv("SNOWFLAKE_" + name) }
	if getenv("ACCOUNT") == "" || getenv("USER") == "" || getenv("DATABASE") == "" || getenv("SCHEMA") == "" ||
		getenv("PRIVATE_KEY_PATH") == "" && getenv("PRIVATE_KEY") == "" {
		t.Skip("live Snowflake test: set SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA and " +
			"SNOWFLAKE_PRIVATE_KEY_PATH (or SNOWFLAKE_PRIVATE_KEY) to run it")
	}
	raw, _ := json.Marshal(map[string]any{
		"account": getenv("ACCOUNT"), "user": getenv("USER"), "database": getenv("DATABASE"), "schema": getenv("SCHEMA"),
		"warehouse": getenv("WAREHOUSE"), "role": getenv("ROLE"), "private_key": getenv("PRIVATE_KEY"),
		"private_key_path": getenv("PRIVATE_KEY_PATH"), "private_key_passphrase": getenv("PRIVATE_KEY_PASSPHRASE"),
	})
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	key, err := cfg.privateKey()
	if err != nil {
		t.Fatal(err)
	}
	sfc, err := cfg.driverConfig(key)
	if err != nil {
		t.Fatal(err)
	}
	rd := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, *sfc))
	defer rd.Close()
	d := New(cfg, quietLog())
	defer d.Close()

	suffix := strings.ToUpper(testkit.RandomSuffix())
	items := "rosetta_live_" + strings.ToLower(suffix)
	typed := items + "_types"
	table := qualified(cfg.database, cfg.schema, strings.ToUpper(items))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, name := range []string{items, typed} {
			for _, tbl := range []string{destName(name), tombPrefix + destName(name)} {
				if _, err := rd.ExecContext(ctx, "DROP TABLE IF EXISTS "+qualified(cfg.database, cfg.schema, tbl)); err != nil {
					t.Errorf("drop %s: %v", tbl, err)
				}
			}
			if _, err := rd.ExecContext(ctx, "DELETE FROM "+qualified(cfg.database, cfg.schema, registryTable)+
				" WHERE "+ident("TABLE_NAME")+" = ?", destName(name)); err != nil {
				t.Errorf("clean registry: %v", err)
			}
		}
	}()
	e := &env{t: t, drv: d, rd: rd}
	it := ev{Table: items, Columns: itemCols}
	e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"), it.Ins(10, 3, "c"),
		it.Change(contracts.OpCreate, 10, 4, `{"id":4}`, ``, `{"id":4,"name":"d","big":"kept"}`))
	e.mustApply(it.Upd(20, 2, "b2"), it.Del(21, 3), it.Change(contracts.OpUpdate, 22, 1, `{"id":5}`, `{"id":4}`, `{"id":5,"name":"moved"}`, "big"))
	e.mustApply(it.Ins(15, 3, "old"), it.Ins(10, 1, "a")) // older: ignored
	q := "SELECT ID, NAME, BIG FROM " + table + " ORDER BY ID"
	e.expect(q, "1|a|<null>", "2|b2|<null>", "5|moved|kept")
	e.mustApply(it.Ins(30, 6, "before"), it.Truncate(31), it.Ins(32, 7, "after"))
	e.mustApply(it.Ins(25, 8, "older than the truncate"))
	e.expect(q, "7|after|<null>")
	// Partial changes (BIG unchanged) out of order, through the column
	// versions in _ROSETTA_COLV: the update before the partial one lands
	// after it; a partial update lands before the insert.
	e.mustApply(it.Change(contracts.OpCreate, 40, 1, `{"id":20}`, ``, `{"id":20,"name":"a","big":"A"}`))
	e.mustApply(it.Change(contracts.OpUpdate, 42, 1, `{"id":20}`, ``, `{"id":20,"name":"c"}`, "big"),
		it.Change(contracts.OpUpdate, 43, 1, `{"id":21}`, ``, `{"id":21,"name":"p"}`, "big"))
	e.expect(q, "7|after|<null>", "20|c|A", "21|p|<null>")
	e.mustApply(it.Change(contracts.OpUpdate, 41, 1, `{"id":20}`, ``, `{"id":20,"name":"b","big":"B"}`),
		it.Change(contracts.OpCreate, 40, 2, `{"id":21}`, ``, `{"id":21,"name":"i","big":"I"}`))
	e.expect(q, "7|after|<null>", "20|c|B", "21|p|I")
	// BIG's values are older than their rows: version keys of 0/29 seq 1
	// and 0/28 seq 2.
	e.expect("SELECT ID, GET("+ident(colvCol)+", 'BIG')::NUMBER(38,0) FROM "+table+" ORDER BY ID",
		"7|<null>", "20|410000000000000000002", "21|400000000000000000003")

	ty := ev{Table: typed, Columns: []contracts.Column{
		{Name: "id", Type: "bigint", BaseType: "bigint", Key: true},
		{Name: "n", Type: "numeric(12,4)", BaseType: "numeric(12,4)"},
		{Name: "f", Type: "double precision", BaseType: "double precision"},
		{Name: "tz", Type: "timestamp with time zone", BaseType: "timestamp with time zone"},
		{Name: "ntz", Type: "timestamp without time zone", BaseType: "timestamp without time zone"},
		{Name: "raw", Type: "bytea", BaseType: "bytea"},
		{Name: "doc", Type: "jsonb", BaseType: "jsonb"},
		{Name: "tags", Type: "text[]", BaseType: "text[]"},
		{Name: "txt", Type: "text", BaseType: "text"},
	}}
	e.mustApply(ty.Change(contracts.OpCreate, 40, 1, `{"id":1}`, ``, `{"id":1,"n":"-12.3400","f":"NaN",
		"tz":"2024-02-29 23:59:58.654321+05:30","ntz":"2024-02-29 23:59:58.654321","raw":"\\xdeadbeef",
		"doc":"{\"a\": [1, \"x\"]}","tags":"{a,\"b c\",NULL}","txt":"q\"uote, comma\nnewline \\N"}`))
	tq := "SELECT ID, N, F::VARCHAR, TO_VARCHAR(TZ, 'YYYY-MM-DD HH24:MI:SS.FF6 TZH:TZM'), TO_VARCHAR(NTZ, 'YYYY-MM-DD HH24:MI:SS.FF6'), " +
		"HEX_ENCODE(RAW), TO_JSON(DOC), TO_JSON(TAGS), TXT FROM " + qualified(cfg.database, cfg.schema, destName(typed))
	e.expect(tq, `1|-12.3400|NaN|2024-02-29 23:59:58.654321 +05:30|2024-02-29 23:59:58.654321|DEADBEEF|{"a":[1,"x"]}|["a","b c",null]|q"uote, comma`+"\nnewline \\N")

	// What `rosetta check-destination` runs: every step and every mapped
	// type's round trip must pass on the real account too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	checkReport(t, LiveCheck(ctx, raw, quietLog()))
}
