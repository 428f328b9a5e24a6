package fakesnowflake

import (
	"crypto/rsa"
	"database/sql"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	sf "github.com/snowflakedb/gosnowflake"
	"github.com/youmark/pkcs8"
)

// snowflakeError unwraps the driver's typed error or fails the test.
func snowflakeError(t *testing.T, err error) *sf.SnowflakeError {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got nil")
	}
	var se *sf.SnowflakeError
	if !errors.As(err, &se) {
		t.Fatalf("expected *gosnowflake.SnowflakeError, got %T: %v", err, err)
	}
	return se
}

func TestLoginWithRegisteredKey(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	db := openDB(t, srv, strings.ToLower(testUser), testKeys()[0]) // user names are case-insensitive
	var dbName, schema string
	if err := db.QueryRowContext(testContext(t), "SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()").Scan(&dbName, &schema); err != nil {
		t.Fatalf("query after key-pair login: %v", err)
	}
	if dbName != "ROSETTA" || schema != "PUBLIC" {
		t.Fatalf("session context = %s.%s, want ROSETTA.PUBLIC", dbName, schema)
	}
}

func TestLoginWithUnregisteredKeyFails(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	db := openDB(t, srv, testUser, testKeys()[1])
	se := snowflakeError(t, db.PingContext(testContext(t)))
	if se.Number != 390144 || !strings.Contains(se.Message, "fingerprint") || !strings.Contains(se.Message, testUser) {
		t.Fatalf("wrong-key login error = %d %q, want 390144 naming the fingerprint and user", se.Number, se.Message)
	}
}

func TestLoginUnknownUserFails(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	db := openDB(t, srv, "NOBODY", testKeys()[0])
	se := snowflakeError(t, db.PingContext(testContext(t)))
	if se.Number != 390100 || !strings.Contains(se.Message, "NOBODY") {
		t.Fatalf("unknown-user login error = %d %q, want 390100 naming the user", se.Number, se.Message)
	}
}

func TestLoginWithEncryptedPKCS8Key(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	srv.SetUser(User{Name: "ROTATED", PublicKeys: []*rsa.PublicKey{&testKeys()[0].PublicKey, &testKeys()[1].PublicKey}})

	// What an operator hands Rosetta: an ENCRYPTED PRIVATE KEY PEM and a passphrase.
	der, err := pkcs8.MarshalPrivateKey(testKeys()[1], []byte("s3cret"), nil)
	if err != nil {
		t.Fatalf("encrypt key: %v", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})

	block, _ := pem.Decode(pemBytes)
	if _, err := pkcs8.ParsePKCS8PrivateKeyRSA(block.Bytes, []byte("wrong")); err == nil {
		t.Fatal("decrypting with the wrong passphrase succeeded")
	}
	key, err := pkcs8.ParsePKCS8PrivateKeyRSA(block.Bytes, []byte("s3cret"))
	if err != nil {
		t.Fatalf("decrypt key: %v", err)
	}
	db := openDB(t, srv, "rotated", key) // the second registered key (rotation)
	if err := db.PingContext(testContext(t)); err != nil {
		t.Fatalf("login with decrypted PKCS#8 key: %v", err)
	}
}

func TestSessionTokenRenewal(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig(testAccount)
	cfg.Users = []User{{Name: testUser, PublicKeys: []*rsa.PublicKey{&testKeys()[0].PublicKey}}}
	cfg.SessionTTL = time.Second
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, "CREATE TEMPORARY TABLE T (X INT)")
	time.Sleep(1500 * time.Millisecond)
	// The expired token gets 390112; the driver renews with the master token and
	// retries on the same session, so the temp table is still there.
	mustExec(t, c, "INSERT INTO T VALUES (1)")
}

// typeRow is one row of the all-types table.
type typeRow struct {
	id      int64
	big     string
	dec     string
	flt     float64
	txt     string
	flag    bool
	day     time.Time
	clock   time.Time
	ntz     time.Time
	tz      time.Time
	bin     []byte
	variant string
}

func TestTypesRoundTrip(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	ctx := testContext(t)

	mustExec(t, c, `CREATE TRANSIENT TABLE types (
		id INTEGER NOT NULL PRIMARY KEY,
		big NUMBER(38,0),
		dec NUMBER(12,4),
		flt FLOAT,
		txt STRING,
		flag BOOLEAN,
		day DATE,
		clock TIME(9),
		ntz TIMESTAMP_NTZ(9),
		tz TIMESTAMP_TZ,
		bin BINARY,
		variant VARIANT
	) DATA_RETENTION_TIME_IN_DAYS = 0 COMMENT = 'all types'`)

	want := []typeRow{
		{
			id: 1, big: "12345678901234567890123456789012345678", dec: "-12.3400", flt: 2.5,
			txt: "it's \"quoted\", ünïcode\nand a newline", flag: true,
			day:   time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
			clock: time.Date(0, 1, 1, 13, 14, 15, 123456000, time.UTC),
			ntz:   time.Date(2024, 2, 29, 23, 59, 58, 654321000, time.UTC),
			tz:    time.Date(2024, 2, 29, 23, 59, 58, 0, time.FixedZone("", 2*3600)),
			bin:   []byte{0, 1, 0xAB, 0xFF}, variant: `{"b":[1,2,{"c":null}],"a":12345678901234567890}`,
		},
		{
			id: 2, big: "-1", dec: "0.0001", flt: -0.125, txt: "", flag: false,
			day:   time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
			clock: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
			ntz:   time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC), // before the epoch
			tz:    time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC),
			// Not []byte{}: gosnowflake v1.19 sends an empty binary bind as "[]", which
			// is not hex, and Snowflake rejects it the way the fake does.
			bin: []byte{0}, variant: `"just a string"`,
		},
	}
	for _, r := range want {
		res := mustExec(t, c, "INSERT INTO types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			r.id, r.big, r.dec, r.flt, r.txt, r.flag,
			sf.DataTypeDate, r.day, sf.DataTypeTime, r.clock, sf.DataTypeTimestampNtz, r.ntz,
			sf.DataTypeTimestampTz, r.tz, sf.DataTypeBinary, r.bin, r.variant)
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			t.Fatalf("insert rows affected = %d, %v; want 1", n, err)
		}
	}
	mustExec(t, c, "INSERT INTO types (id) VALUES (:1)", int64(3)) // :N bind style, all else NULL

	rows, err := c.QueryContext(ctx, "SELECT * FROM types ORDER BY id")
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if got := strings.Join(cols, ","); got != "ID,BIG,DEC,FLT,TXT,FLAG,DAY,CLOCK,NTZ,TZ,BIN,VARIANT" {
		t.Fatalf("columns = %s, want upper-case Snowflake names", got)
	}
	cts, _ := rows.ColumnTypes()
	wantTypes := "FIXED,FIXED,FIXED,REAL,TEXT,BOOLEAN,DATE,TIME,TIMESTAMP_NTZ,TIMESTAMP_TZ,BINARY,VARIANT"
	var gotTypes []string
	for _, ct := range cts {
		gotTypes = append(gotTypes, ct.DatabaseTypeName())
	}
	if strings.Join(gotTypes, ",") != wantTypes {
		t.Fatalf("column types = %v, want %s", gotTypes, wantTypes)
	}
	if p, s, _ := cts[2].DecimalSize(); p != 12 || s != 4 {
		t.Fatalf("DEC precision/scale = %d/%d, want 12/4", p, s)
	}

	var got []typeRow
	var nulls sql.NullString
	for rows.Next() {
		var r typeRow
		var big, dec, txt, variant sql.NullString
		var flt sql.NullFloat64
		var flag sql.NullBool
		var day, clock, ntz, tz sql.NullTime
		var bin []byte
		if err := rows.Scan(&r.id, &big, &dec, &flt, &txt, &flag, &day, &clock, &ntz, &tz, &bin, &variant); err != nil {
			t.Fatalf("scan: %v", err)
		}
		if r.id == 3 {
			if big.Valid || dec.Valid || flt.Valid || txt.Valid || flag.Valid || day.Valid || clock.Valid ||
				ntz.Valid || tz.Valid || bin != nil || variant.Valid {
				t.Fatalf("row 3 should be all NULL: %v %v %v %v %v %v %v %v %v %v %v", big, dec, flt, txt, flag, day, clock, ntz, tz, bin, variant)
			}
			continue
		}
		r.big, r.dec, r.flt, r.txt, r.flag = big.String, dec.String, flt.Float64, txt.String, flag.Bool
		r.day, r.clock, r.ntz, r.tz, r.bin, r.variant = day.Time, clock.Time, ntz.Time, tz.Time, bin, variant.String
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	_ = nulls
	if len(got) != 2 {
		t.Fatalf("got %d non-null rows, want 2", len(got))
	}
	for i, w := range want {
		g := got[i]
		if g.big != w.big || g.dec != w.dec || g.flt != w.flt || g.txt != w.txt || g.flag != w.flag {
			t.Errorf("row %d scalars = %q %q %v %q %v, want %q %q %v %q %v", w.id, g.big, g.dec, g.flt, g.txt, g.flag, w.big, w.dec, w.flt, w.txt, w.flag)
		}
		if !g.day.Equal(w.day) {
			t.Errorf("row %d DATE = %v, want %v", w.id, g.day, w.day)
		}
		if g.clock.Hour() != w.clock.Hour() || g.clock.Minute() != w.clock.Minute() || g.clock.Second() != w.clock.Second() || g.clock.Nanosecond() != w.clock.Nanosecond() {
			t.Errorf("row %d TIME = %v, want %v", w.id, g.clock, w.clock)
		}
		if !g.ntz.Equal(w.ntz) {
			t.Errorf("row %d TIMESTAMP_NTZ = %v, want %v", w.id, g.ntz, w.ntz)
		}
		if !g.tz.Equal(w.tz) {
			t.Errorf("row %d TIMESTAMP_TZ = %v, want instant %v", w.id, g.tz, w.tz)
		}
		if string(g.bin) != string(w.bin) {
			t.Errorf("row %d BINARY = %x, want %x", w.id, g.bin, w.bin)
		}
	}
	// VARIANT comes back as Snowflake prints it: keys sorted, indented, big numbers intact.
	wantVariant := "{\n  \"a\": 12345678901234567890,\n  \"b\": [\n    1,\n    2,\n    {\n      \"c\": null\n    }\n  ]\n}"
	if got[0].variant != wantVariant {
		t.Errorf("VARIANT = %q, want %q", got[0].variant, wantVariant)
	}
	if got[1].variant != `"just a string"` {
		t.Errorf("VARIANT string = %q", got[1].variant)
	}

	// PRIMARY KEY is not enforced by Snowflake, so a duplicate id is accepted.
	mustExec(t, c, "INSERT INTO types (id) VALUES (1)")
}

// TestFloatBindPrecision documents a gosnowflake v1.19 quirk the destination
// driver must work around: float64 binds are formatted with 32-bit precision.
func TestFloatBindPrecision(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	var viaFloat, viaString float64
	if err := c.QueryRowContext(testContext(t), "SELECT ?::DOUBLE, ?::DOUBLE", 3.141592653589793, "3.141592653589793").Scan(&viaFloat, &viaString); err != nil {
		t.Fatal(err)
	}
	if viaFloat == 3.141592653589793 {
		t.Log("gosnowflake now binds float64 at full precision; the workaround is no longer needed")
	}
	if viaString != 3.141592653589793 {
		t.Fatalf("float bound as text = %v, want full precision", viaString)
	}
}

func TestTransactions(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	db := openDB(t, srv, testUser, testKeys()[0])
	c := conn(t, db)
	ctx := testContext(t)
	mustExec(t, c, "CREATE TABLE ledger (id NUMBER NOT NULL, note TEXT)")
	count := func() int {
		t.Helper()
		var n int
		if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM ledger").Scan(&n); err != nil {
			t.Fatalf("count: %v", err)
		}
		return n
	}

	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO ledger VALUES (1, 'rolled back'), (2, 'rolled back')"); err != nil {
		t.Fatalf("insert in tx: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if n := count(); n != 0 {
		t.Fatalf("after rollback count = %d, want 0", n)
	}

	tx, err = c.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO ledger VALUES (3, 'committed')"); err != nil {
		t.Fatalf("insert in tx: %v", err)
	}
	// Another session must not see uncommitted rows.
	var other int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM ledger").Scan(&other); err != nil {
		t.Fatalf("count from other session: %v", err)
	}
	if other != 0 {
		t.Fatalf("other session sees %d uncommitted rows", other)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if n := count(); n != 1 {
		t.Fatalf("after commit count = %d, want 1", n)
	}

	// DDL commits the open transaction, as in Snowflake: the ROLLBACK after it
	// cannot undo the insert.
	mustExec(t, c, "BEGIN")
	mustExec(t, c, "INSERT INTO ledger VALUES (4, 'committed by DDL')")
	mustExec(t, c, "CREATE TABLE other (x INT)")
	mustExec(t, c, "ROLLBACK")
	if n := count(); n != 2 {
		t.Fatalf("after DDL-in-transaction count = %d, want 2", n)
	}

	// A failed statement inside a transaction: the fake refuses the COMMIT loudly.
	mustExec(t, c, "BEGIN")
	mustExec(t, c, "INSERT INTO ledger VALUES (5, 'lost')")
	if _, err := c.ExecContext(ctx, "INSERT INTO ledger VALUES (NULL, 'bad')"); err == nil {
		t.Fatal("NULL into NOT NULL succeeded")
	}
	se := snowflakeError(t, func() error { _, err := c.ExecContext(ctx, "COMMIT"); return err }())
	if !strings.Contains(se.Message, "rolled back") {
		t.Fatalf("commit after failed statement: %q", se.Message)
	}
	if n := count(); n != 2 {
		t.Fatalf("after aborted transaction count = %d, want 2", n)
	}
}

func TestConstraintErrorKeepsMessage(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, "CREATE TABLE strict (id NUMBER(38,0) NOT NULL, name VARCHAR)")
	_, err := c.ExecContext(testContext(t), "INSERT INTO strict (id, name) VALUES (?, ?)", nil, "x")
	se := snowflakeError(t, err)
	if se.Number != 100072 || se.SQLState != "22000" || !strings.Contains(se.Message, "NOT NULL constraint failed: STRICT.ID") {
		t.Fatalf("NOT NULL violation = %d %s %q, want 100072 22000 with DuckDB's message", se.Number, se.SQLState, se.Message)
	}
	_, err = c.ExecContext(testContext(t), "SELECT nope FROM strict")
	if se := snowflakeError(t, err); se.Number != 904 {
		t.Fatalf("unknown column = %d %q, want 000904", se.Number, se.Message)
	}
	_, err = c.ExecContext(testContext(t), "SELECT * FROM missing_table")
	if se := snowflakeError(t, err); se.Number != 2003 || se.SQLState != "42S02" {
		t.Fatalf("missing table = %d %s %q, want 002003 42S02", se.Number, se.SQLState, se.Message)
	}
}

func TestIdentifierCase(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	ctx := testContext(t)
	mustExec(t, c, `CREATE SCHEMA IF NOT EXISTS "Raw"`)
	mustExec(t, c, `CREATE TABLE "Raw"."Events" ("eventId" INT, payload TEXT)`)
	mustExec(t, c, `INSERT INTO rosetta."Raw"."Events" VALUES (1, 'p')`)
	rows, err := c.QueryContext(ctx, `SELECT "eventId", payload, payload AS copy FROM "Raw"."Events"`)
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	_ = rows.Close()
	if strings.Join(cols, ",") != "eventId,PAYLOAD,COPY" {
		t.Fatalf("columns = %v, want quoted names kept and unquoted upper-cased", cols)
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	db := openDB(t, srv, testUser, testKeys()[0])
	ctx := testContext(t)
	srv.FailNext("select 42", 2)
	for i := 0; i < 2; i++ {
		se := snowflakeError(t, db.QueryRowContext(ctx, "SELECT 42").Scan(new(int)))
		if se.Number != 603 || se.SQLState != "XX000" {
			t.Fatalf("injected failure %d = %d %s, want 000603 XX000", i, se.Number, se.SQLState)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatalf("a statement the pattern does not match: %v", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT 42").Scan(&n); err != nil || n != 42 {
		t.Fatalf("after the injected failures: %d, %v", n, err)
	}
}
