package pgrepl

import (
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

func TestFirstArrayElement(t *testing.T) {
	for in, want := range map[string]string{
		`{7.50}`:                       `7.50`,
		`{"x \"y\", \\z"}`:             `x "y", \z`,
		`{"{1,2}"}`:                    `{1,2}`,
		`{"2024-01-02 03:04:05+00"}`:   `2024-01-02 03:04:05+00`,
		`{(1,1),(0,0)}`:                `(1,1),(0,0)`,
		`{""}`:                         ``,
		`{"\\x00ff"}`:                  `\x00ff`,
		`{"{\"a b\",NULL,\"NULL\"}"}`:  `{"a b",NULL,"NULL"}`,
		`{"{\"q\\\"uote\"}"}`:          `{"q\"uote"}`,
		`{"héllo 世界"}`:                 `héllo 世界`,
		`{"{\"{\\\"k\\\": 1}\"}"}`:     `{"{\"k\": 1}"}`,
		`{infinity}`:                   `infinity`,
		`{"a\\b"}`:                     `a\b`,
		`{"<a b=\"1\">x &amp; y</a>"}`: `<a b="1">x &amp; y</a>`,
	} {
		got, err := firstArrayElement(in)
		if err != nil || got != want {
			t.Errorf("firstArrayElement(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{``, `{}`, `{NULL}`, `7`, `{"a","b"}`, `{"a`, `{"a\`} {
		if got, err := firstArrayElement(bad); err == nil {
			t.Errorf("firstArrayElement(%s) = %q, want an error", bad, got)
		}
	}
}

// testExistingValues checks that changes carry, per column added with a
// non-volatile default, the value PostgreSQL gave the rows that existed
// then (attmissingval), spelled as a change would spell it whatever the
// database's own settings, and nothing for other columns.
func testExistingValues(t *testing.T, pg *testkit.Postgres) {
	ctx := ctxT(t)
	db := pg.CreateDatabase(t, "existing")
	pg.Exec(t, "postgres", `ALTER DATABASE `+db+` SET DateStyle = 'SQL, DMY'; ALTER DATABASE `+db+` SET TimeZone = 'Asia/Kathmandu';
		ALTER DATABASE `+db+` SET extra_float_digits = -3; ALTER DATABASE `+db+` SET bytea_output = 'escape';
		ALTER DATABASE `+db+` SET IntervalStyle = 'sql_standard'`)
	pg.Exec(t, db, `CREATE TYPE mood AS ENUM ('sad', 'happy');
		CREATE TABLE t (id int PRIMARY KEY, created int DEFAULT 1);
		INSERT INTO t VALUES (1)`)
	conn := pg.Connect(t, db)
	slot := "ex_" + testkit.RandomSuffix()
	if err := EnsurePublication(ctx, conn, "ex", []natsx.Table{{Schema: "public", Name: "t"}}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSlot(ctx, conn, slot); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, db, `ALTER TABLE t ADD COLUMN num numeric(6,2) DEFAULT 7.5, ADD COLUMN txt text DEFAULT E'x "y", \\z',
		ADD COLUMN arr int[] DEFAULT '{1,NULL}', ADD COLUMN ts timestamptz DEFAULT '2024-01-02 03:04:05.5+05:45',
		ADD COLUMN bin bytea DEFAULT '\x00ff', ADD COLUMN iv interval DEFAULT '1 day -2 hours', ADD COLUMN f float8 DEFAULT 0.1,
		ADD COLUMN b boolean DEFAULT true, ADD COLUMN i bigint DEFAULT -9223372036854775808, ADD COLUMN m mood DEFAULT 'happy',
		ADD COLUMN plain text, ADD COLUMN made_null text DEFAULT NULL`)
	pg.Exec(t, db, `INSERT INTO t (id) VALUES (2)`)
	// The decoding session spells values as capture's replication
	// connection does; the resolver gets a connection of its own with
	// the database's odd defaults, which it must not depend on.
	if _, err := conn.Exec(ctx, `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';
		SET extra_float_digits = 1; SET bytea_output = 'hex'`); err != nil {
		t.Fatal(err)
	}
	// The inserting session's commit may not be flushed yet; logical
	// decoding reads only flushed WAL.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
			'proto_version', '1', 'publication_names', 'ex')`, slot).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := getChanges(t, conn, NewDecoder(1, db, NewCatalogResolver(pg.Connect(t, db))), slot, "ex")
	if len(got) != 1 || got[0].Op != contracts.OpCreate {
		t.Fatalf("got %d changes, want one insert", len(got))
	}
	want := map[string]string{
		"num": `"7.50"`, "txt": `"x \"y\", \\z"`, "arr": `"{1,NULL}"`, "ts": `"2024-01-01 21:19:05.5+00"`,
		"bin": `"\\x00ff"`, "iv": `"1 day -02:00:00"`, "f": `"0.1"`, "b": `true`, "i": `-9223372036854775808`, "m": `"happy"`,
	}
	for _, c := range got[0].Columns {
		w, ok := want[c.Name]
		if string(c.ExistingValue) != w {
			t.Errorf("column %s: existing value %s, want %s", c.Name, c.ExistingValue, w)
		}
		// The value of the row inserted after the ALTER is the default:
		// the existing value must be spelled as exactly that.
		if ok && string(got[0].After[c.Name]) != w {
			t.Errorf("column %s: after %s, existing value %s: spelled differently", c.Name, got[0].After[c.Name], w)
		}
	}
}
