package fakesnowflake

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sf "github.com/snowflakedb/gosnowflake"
)

// TestInformationSchemaTypes: INFORMATION_SCHEMA.COLUMNS names types as
// Snowflake does, with its sizes, declared VARCHAR and BINARY lengths
// included (and followed through ALTER and RENAME).
func TestInformationSchemaTypes(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, `CREATE TABLE TY (ID NUMBER(10,0) NOT NULL, A NUMBER(12,2), I INT, S VARCHAR(20), S2 STRING, B BINARY(8), B2 BINARY,
		F FLOAT, FL BOOLEAN, D DATE, TM TIME, NTZ TIMESTAMP_NTZ, TZ TIMESTAMP_TZ, V VARIANT)`)
	mustExec(t, c, `ALTER TABLE TY ALTER COLUMN S SET DATA TYPE VARCHAR(40)`)
	mustExec(t, c, `ALTER TABLE TY RENAME COLUMN S TO S3`)
	got := queryStrings(t, c, `SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, CHARACTER_OCTET_LENGTH, NUMERIC_PRECISION,
		NUMERIC_PRECISION_RADIX, NUMERIC_SCALE, DATETIME_PRECISION, IS_NULLABLE FROM ROSETTA.INFORMATION_SCHEMA.COLUMNS
		WHERE TABLE_SCHEMA = 'PUBLIC' AND TABLE_NAME = 'TY' ORDER BY ORDINAL_POSITION`)
	want := [][]string{
		{"ID", "NUMBER", "NULL", "NULL", "10", "10", "0", "NULL", "NO"},
		{"A", "NUMBER", "NULL", "NULL", "12", "10", "2", "NULL", "YES"},
		{"I", "NUMBER", "NULL", "NULL", "38", "10", "0", "NULL", "YES"},
		{"S3", "TEXT", "40", "160", "NULL", "NULL", "NULL", "NULL", "YES"},
		{"S2", "TEXT", "16777216", "16777216", "NULL", "NULL", "NULL", "NULL", "YES"},
		{"B", "BINARY", "8", "8", "NULL", "NULL", "NULL", "NULL", "YES"},
		{"B2", "BINARY", "8388608", "8388608", "NULL", "NULL", "NULL", "NULL", "YES"},
		{"F", "FLOAT", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "YES"},
		{"FL", "BOOLEAN", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "YES"},
		{"D", "DATE", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "YES"},
		{"TM", "TIME", "NULL", "NULL", "NULL", "NULL", "NULL", "9", "YES"},
		{"NTZ", "TIMESTAMP_NTZ", "NULL", "NULL", "NULL", "NULL", "NULL", "9", "YES"},
		{"TZ", "TIMESTAMP_TZ", "NULL", "NULL", "NULL", "NULL", "NULL", "9", "YES"},
		{"V", "VARIANT", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "YES"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("INFORMATION_SCHEMA.COLUMNS =\n%v\nwant\n%v", got, want)
	}
}

// TestAlterColumnTypeStrict: ALTER COLUMN … SET DATA TYPE refuses what
// Snowflake refuses (040052 with its message) and runs what it allows.
func TestAlterColumnTypeStrict(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, `CREATE TABLE AL (N NUMBER(10,2), S VARCHAR(20), F FLOAT, U VARCHAR)`)
	mustExec(t, c, `INSERT INTO AL VALUES (1.25, 'abc', 1.5, 'x')`)
	for _, tt := range []struct{ alter, want string }{
		{"N SET DATA TYPE NUMBER(12,4)", "cannot change column N from type NUMBER(10,2) to NUMBER(12,4) because changing the scale of a number is not supported."},
		{"N SET DATA TYPE VARCHAR(100)", "cannot change column N from type NUMBER(10,2) to VARCHAR(100)."},
		{"S SET DATA TYPE VARCHAR(10)", "cannot change column S from type VARCHAR(20) to VARCHAR(10) because reducing the byte-length of a varchar is not supported."},
		{"U TYPE VARCHAR(10)", "cannot change column U from type VARCHAR(16777216) to VARCHAR(10) because reducing"},
		{"F SET DATA TYPE NUMBER(38,0)", "cannot change column F from type FLOAT to NUMBER(38,0)."},
		{"S SET DATA TYPE BINARY", "cannot change column S from type VARCHAR(20) to BINARY(8388608)."},
	} {
		_, err := c.ExecContext(testContext(t), "ALTER TABLE AL ALTER COLUMN "+tt.alter)
		se := snowflakeError(t, err)
		if se.Number != 40052 || se.SQLState != "22000" || !strings.Contains(se.Message, tt.want) {
			t.Errorf("ALTER COLUMN %s = %d %s %q, want 040052 22000 %q", tt.alter, se.Number, se.SQLState, se.Message, tt.want)
		}
	}
	// Allowed: VARCHAR widening, NUMBER precision up (and down while the
	// values fit), a synonym.
	mustExec(t, c, `ALTER TABLE AL ALTER COLUMN S SET DATA TYPE VARCHAR(30), COLUMN N SET DATA TYPE NUMBER(20,2)`)
	mustExec(t, c, `ALTER TABLE AL ALTER COLUMN S SET DATA TYPE STRING, COLUMN N SET DATA TYPE NUMBER(5,2), COLUMN F TYPE DOUBLE`)
	if got := queryStrings(t, c, `SELECT N, S, F FROM AL`); fmt.Sprint(got) != "[[1.25 abc 1.5]]" {
		t.Fatalf("rows after the allowed ALTERs: %v", got)
	}
}

// TestLengthsEnforced: a value longer than its column's declared VARCHAR(n)
// (characters) or BINARY(n) (bytes) fails with 100078 and leaves the table
// as it was, through INSERT, UPDATE and MERGE, in autocommit and in a
// transaction (which the failure aborts, see errTxAborted).
func TestLengthsEnforced(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, `CREATE TABLE L (ID INT, S VARCHAR(3), B BINARY(2), FREE VARCHAR)`)
	mustExec(t, c, `INSERT INTO L VALUES (?, ?, ?, ?)`, 1, "ééé", sf.DataTypeBinary, []byte{1, 2}, "no limit here")
	tooLong := func(q, want string) {
		t.Helper()
		_, err := c.ExecContext(testContext(t), q)
		se := snowflakeError(t, err)
		if se.Number != 100078 || se.SQLState != "22000" || !strings.Contains(se.Message, want) {
			t.Errorf("%s = %d %s %q, want 100078 22000 %q", q, se.Number, se.SQLState, se.Message, want)
		}
	}
	tooLong(`INSERT INTO L VALUES (2, 'abcd', NULL, NULL)`, "String 'abcd' is too long and would be truncated")
	_, err := c.ExecContext(testContext(t), `INSERT INTO L VALUES (?, NULL, ?, NULL)`, 2, sf.DataTypeBinary, []byte{1, 2, 3})
	if se := snowflakeError(t, err); se.Number != 100078 || !strings.Contains(se.Message, "Binary value '010203' is too long") {
		t.Errorf("a 3-byte value into BINARY(2) = %d %q, want 100078", se.Number, se.Message)
	}
	tooLong(`UPDATE L SET S = S || 'x' WHERE ID = 1`, "String 'éééx' is too long")
	tooLong(`MERGE INTO L t USING (SELECT 1 AS ID, 'long' AS S) s ON t.ID = s.ID WHEN MATCHED THEN UPDATE SET S = s.S`, "String 'long'")
	mustExec(t, c, `MERGE INTO L t USING (SELECT 3 AS ID, 'abc' AS S) s ON t.ID = s.ID WHEN NOT MATCHED THEN INSERT (ID, S) VALUES (s.ID, s.S)`)
	mustExec(t, c, `BEGIN`)
	mustExec(t, c, `INSERT INTO L VALUES (4, 'ok', NULL, NULL)`)
	tooLong(`INSERT INTO L VALUES (5, 'abcd', NULL, NULL)`, "too long")
	if _, err := c.ExecContext(testContext(t), `COMMIT`); err == nil {
		t.Fatal("COMMIT after a refused write succeeded")
	}
	if got := queryStrings(t, c, `SELECT ID, S, HEX(B) FROM L ORDER BY ID`); fmt.Sprint(got) != "[[1 ééé 0102] [3 abc NULL]]" {
		t.Fatalf("rows after the refused writes: %v", got)
	}
	// Widened, the column takes the longer value.
	mustExec(t, c, `ALTER TABLE L ALTER COLUMN S SET DATA TYPE VARCHAR(10)`)
	mustExec(t, c, `UPDATE L SET S = 'abcdefghij' WHERE ID = 3`)
}

// TestLengthsEnforcedOnLoad: COPY and CREATE TABLE … AS SELECT respect
// declared VARCHAR(n) and BINARY(n) lengths as INSERT does: 100078, and
// nothing of the statement stays (the COPY's earlier rows, the new or
// replaced table).
func TestLengthsEnforcedOnLoad(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	tooLong := func(q, want string) {
		t.Helper()
		_, err := c.ExecContext(testContext(t), q)
		se := snowflakeError(t, err)
		if se.Number != 100078 || se.SQLState != "22000" || !strings.Contains(se.Message, want) {
			t.Errorf("%s = %d %s %q, want 100078 22000 %q", q, se.Number, se.SQLState, se.Message, want)
		}
	}

	mustExec(t, c, `CREATE TABLE LC (ID INT, S VARCHAR(3), B BINARY(2))`)
	dir := t.TempDir()
	for name, body := range map[string]string{"a.csv": "1,abc,0102\n", "b.csv": "2,ab,010203\n", "c.csv": "3,abcd,01\n"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		queryStrings(t, c, "PUT file://"+path+" @%LC AUTO_COMPRESS=FALSE")
	}
	const format = ` FILE_FORMAT = (TYPE = CSV BINARY_FORMAT = HEX)`
	tooLong(`COPY INTO LC FROM @%LC FILES = ('a.csv', 'c.csv')`+format, "String 'abcd' is too long")
	tooLong(`COPY INTO LC FROM @%LC FILES = ('a.csv', 'b.csv')`+format, "Binary value '010203' is too long")
	tooLong(`COPY INTO LC (B, S, ID) FROM (SELECT $3, $2, $1 FROM @%LC) FILES = ('c.csv')`+format, "String 'abcd'")
	if got := queryStrings(t, c, `SELECT count(*) FROM LC`); fmt.Sprint(got) != "[[0]]" {
		t.Fatalf("rows after the refused COPYs: %v, want none", got)
	}
	queryStrings(t, c, `COPY INTO LC FROM @%LC FILES = ('a.csv')`+format)

	tooLong(`CREATE TABLE CT (S VARCHAR(2)) AS SELECT S FROM LC`, "String 'abc' is too long")
	if got := queryStrings(t, c, `SELECT count(*) FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'CT'`); fmt.Sprint(got) != "[[0]]" {
		t.Fatalf("a refused CREATE TABLE AS left the table: %v", got)
	}
	mustExec(t, c, `CREATE TABLE CT (S VARCHAR(3)) AS SELECT S FROM LC`)
	tooLong(`CREATE OR REPLACE TABLE CT (S VARCHAR(1)) AS SELECT 'xy' AS S`, "String 'xy'")
	if got := queryStrings(t, c, `SELECT S FROM CT`); fmt.Sprint(got) != "[[abc]]" {
		t.Fatalf("a refused CREATE OR REPLACE TABLE AS changed the table: %v", got)
	}
	tooLong(`INSERT INTO CT VALUES ('abcd')`, "String 'abcd'")
}

// TestNumberOutOfRange: a number too wide for its NUMBER(p,s) column fails
// with Snowflake's 100039 (22003), through INSERT and COPY; a value that
// is no number stays 100038 (22018).
func TestNumberOutOfRange(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, `CREATE TABLE NR (A NUMBER(5,2), I INT)`)
	path := filepath.Join(t.TempDir(), "nr.csv")
	if err := os.WriteFile(path, []byte("12345.6,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	queryStrings(t, c, "PUT file://"+path+" @%NR AUTO_COMPRESS=FALSE")
	for _, tt := range []struct {
		q, code, state, want string
	}{
		{`INSERT INTO NR VALUES (12345.6, 1)`, "100039", "22003", "Numeric value '12345.6' is out of range"},
		{`INSERT INTO NR VALUES ('-12345.6', 1)`, "100039", "22003", "Numeric value '-12345.6' is out of range"},
		{`INSERT INTO NR VALUES (1, 1e40)`, "100039", "22003", "is out of range"},
		{`COPY INTO NR FROM @%NR FILE_FORMAT = (TYPE = CSV)`, "100039", "22003", "Numeric value '12345.6' is out of range"},
		{`INSERT INTO NR VALUES ('abc', 1)`, "100038", "22018", "abc"},
	} {
		_, err := c.ExecContext(testContext(t), tt.q)
		se := snowflakeError(t, err)
		if fmt.Sprintf("%06d", se.Number) != tt.code || se.SQLState != tt.state || !strings.Contains(se.Message, tt.want) {
			t.Errorf("%s = %d %s %q, want %s %s %q", tt.q, se.Number, se.SQLState, se.Message, tt.code, tt.state, tt.want)
		}
	}
}

// TestQuotedIdentifiersStrict: with QUOTED_IDENTIFIERS_IGNORE_CASE=FALSE
// (the default) "Foo", "FOO" and foo are as in Snowflake: foo and "FOO"
// one name, "Foo" another; a wrong-case quoted table name is 002003 and a
// wrong-case column 000904. Names come back as written, in results and
// INFORMATION_SCHEMA. TRUE folds quoted names to upper case.
func TestQuotedIdentifiersStrict(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := conn(t, openDB(t, srv, testUser, testKeys()[0]))
	mustExec(t, c, `CREATE TABLE "Foo" ("Id" INT, "ID" INT, "name~x" VARCHAR(4), v VARCHAR)`)
	mustExec(t, c, `CREATE TABLE foo (id INT)`) // FOO: another table
	mustExec(t, c, `INSERT INTO "Foo" ("Id", ID, "name~x", V) VALUES (1, 2, 'ab', 'x')`)
	mustExec(t, c, `INSERT INTO "FOO" VALUES (3)`)
	if got := queryStrings(t, c, `SELECT "Id", "ID", id, "name~x", "V" FROM "Foo"`); fmt.Sprint(got) != "[[1 2 2 ab x]]" {
		t.Fatalf(`"Foo" rows = %v`, got)
	}
	if got := queryStrings(t, c, `SELECT ID FROM Foo`); fmt.Sprint(got) != "[[3]]" {
		t.Fatalf("FOO rows = %v", got)
	}
	rows, err := c.QueryContext(testContext(t), `SELECT * FROM "Foo"`)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := rows.Columns()
	rows.Close()
	if fmt.Sprint(names) != "[Id ID name~x V]" {
		t.Fatalf("result column names = %v, want [Id ID name~x V]", names)
	}
	if got := queryStrings(t, c, `SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_MAXIMUM_LENGTH FROM INFORMATION_SCHEMA.COLUMNS
		WHERE TABLE_NAME IN ('Foo', 'FOO') ORDER BY TABLE_NAME, ORDINAL_POSITION`); fmt.Sprint(got) !=
		"[[FOO ID NULL] [Foo Id NULL] [Foo ID NULL] [Foo name~x 4] [Foo V 16777216]]" {
		t.Fatalf("INFORMATION_SCHEMA.COLUMNS = %v", got)
	}
	for _, tt := range []struct {
		q    string
		code int
		want string
	}{
		{`SELECT * FROM "foo"`, 2003, "does not exist or not authorized"},
		{`INSERT INTO "fOO" VALUES (1)`, 2003, "does not exist or not authorized"},
		{`SELECT "id" FROM "Foo"`, 904, "invalid identifier"},
		{`SELECT "Name~x" FROM "Foo"`, 904, "invalid identifier"},
		{`INSERT INTO "Foo" ("Id", "name~x") VALUES (1, 'abcde')`, 100078, "String 'abcde' is too long"},
	} {
		_, err := c.ExecContext(testContext(t), tt.q)
		se := snowflakeError(t, err)
		if se.Number != tt.code || !strings.Contains(se.Message, tt.want) {
			t.Errorf("%s = %d %q, want %d %q", tt.q, se.Number, se.Message, tt.code, tt.want)
		}
	}
	mustExec(t, c, `ALTER TABLE "Foo" RENAME COLUMN "name~x" TO "Nm"`)
	mustExec(t, c, `ALTER TABLE "Foo" ALTER COLUMN "Nm" SET DATA TYPE VARCHAR(5)`)
	mustExec(t, c, `UPDATE "Foo" SET "Nm" = 'abcde'`)

	mustExec(t, c, `ALTER SESSION SET QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE`)
	if got := queryStrings(t, c, `SELECT "id" FROM "foo"`); fmt.Sprint(got) != "[[3]]" {
		t.Fatalf(`"foo" with QUOTED_IDENTIFIERS_IGNORE_CASE = %v, want FOO's rows`, got)
	}
}
